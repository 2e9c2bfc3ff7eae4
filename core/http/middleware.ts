import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Capability, PublicUser } from '../contract.js'
import type { AuthService } from '../auth/AuthService.js'
import { can } from '../auth/capabilities.js'
import { ForbiddenError, JobpostError, RateLimitedError, UnauthenticatedError, coerceError } from '../errors.js'
import type { Logger } from '../logger.js'
import { sendError } from './envelope.js'

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      user?: PublicUser
      token?: string
    }
  }
}

export function bearerToken(header: string | undefined): string | null {
  if (!header) return null
  const match = /^Bearer\s+([A-Za-z0-9_\-.~+/]+=*)\s*$/i.exec(header)
  return match ? match[1]! : null
}

/** 401 unless the request carries a valid, unrevoked bearer token. */
export function authenticate(auth: AuthService): RequestHandler {
  return async (req, _res, next) => {
    const token = bearerToken(req.headers.authorization)
    if (!token) throw new UnauthenticatedError('A bearer token is required.')
    const user = await auth.authenticate(token)
    if (!user) throw new UnauthenticatedError('The token is invalid, expired or revoked.')
    req.user = user
    req.token = token
    next()
  }
}

/** 403 unless the authenticated user has the capability (manage_jobs implies all). */
export function requireCapability(capability: Capability): RequestHandler {
  return (req, _res, next) => {
    if (!req.user || !can(req.user, capability)) throw new ForbiddenError(`This action needs the ${capability} capability.`)
    next()
  }
}

/**
 * At most `limit` requests of one client in progress at once; the next ones wait (in order, their
 * bodies still unread), at most `maxQueued` of them, beyond which 429. A client is its bearer
 * token, or its address when it has none (the socket's address unless TRUST_PROXY says
 * otherwise, so a forged X-Forwarded-For makes no new client). One client sending hundreds of
 * requests at once thus occupies a few slots of the event loop, and everybody else's requests
 * are served between them instead of queueing behind all of them.
 */
export function perClientConcurrency(options: { limit: number; maxQueued: number }): RequestHandler {
  const clients = new Map<string, { active: number; waiting: { start(): void; gone: boolean }[] }>()
  return (req, res, next) => {
    const token = bearerToken(req.headers.authorization)
    const key = token ? `token:${token.length > 128 ? 'oversized' : token}` : `address:${req.ip ?? req.socket.remoteAddress ?? 'unknown'}`
    let client = clients.get(key)
    if (!client) clients.set(key, (client = { active: 0, waiting: [] }))
    const entry = client
    const pump = () => {
      while (entry.active < options.limit && entry.waiting.length) {
        const waiter = entry.waiting.shift()!
        if (waiter.gone) continue
        entry.active += 1
        waiter.start()
      }
      if (entry.active === 0 && entry.waiting.length === 0) clients.delete(key)
    }
    let started = false
    let done = false
    const finish = () => {
      if (done) return
      done = true
      if (started) entry.active -= 1
      else waiter.gone = true
      pump()
    }
    const waiter = {
      gone: false,
      start() {
        started = true
        next()
      },
    }
    res.once('finish', finish)
    res.once('close', finish)
    if (entry.active < options.limit && entry.waiting.length === 0) {
      entry.active += 1
      started = true
      next()
      return
    }
    if (entry.waiting.length >= options.maxQueued) {
      done = true
      if (entry.active === 0 && entry.waiting.length === 0) clients.delete(key)
      throw new RateLimitedError('Too many requests at once from this client; wait for the ones in progress.', 1000)
    }
    entry.waiting.push(waiter)
  }
}

/** 415 for a request body that is not JSON. */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined
  if (hasBody && !req.is('application/json')) {
    throw new JobpostError('UNSUPPORTED_MEDIA_TYPE', 'The request body must be JSON (Content-Type: application/json).', 415)
  }
  // JSON is UTF-8 (RFC 8259); the body parser would also decode utf-7/utf-16 bodies.
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase()
  if (hasBody && charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new JobpostError('UNSUPPORTED_MEDIA_TYPE', 'The request body must be UTF-8 JSON.', 415)
  }
  next()
}

/** Maps every error to the contract's envelope; unknown errors become a 500 without details. */
export function errorHandler(logger: Logger) {
  return (thrown: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return
    if (thrown instanceof JobpostError) {
      const retryAfterMs = (thrown as { retryAfterMs?: unknown }).retryAfterMs
      if (typeof retryAfterMs === 'number') res.setHeader('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))))
      sendError(res, thrown.status, { code: thrown.code, message: thrown.message })
      return
    }
    const bodyError = thrown as { type?: string; status?: number }
    if (bodyError?.type === 'entity.parse.failed') {
      sendError(res, 400, { code: 'INVALID_JSON', message: 'The request body is not valid JSON.' })
      return
    }
    if (bodyError?.type === 'entity.too.large') {
      sendError(res, 413, { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is too large.' })
      return
    }
    if (bodyError?.type === 'charset.unsupported' || bodyError?.type === 'encoding.unsupported') {
      sendError(res, 415, { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'The request body encoding is not supported.' })
      return
    }
    if (typeof bodyError?.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
      sendError(res, bodyError.status, { code: 'VALIDATION_FAILED', message: 'The request could not be read.' })
      return
    }
    if (isForeignKeyViolation(thrown)) {
      // A safety net: callers check references first (createdBy, parentJobId) with a clearer message.
      sendError(res, 400, { code: 'VALIDATION_FAILED', message: 'The request refers to a record that does not exist.' })
      return
    }
    if (isDatabaseUnavailable(thrown)) {
      logger.error({ err: coerceError(thrown) }, 'Database unavailable')
      sendError(res, 503, { code: 'DATABASE_UNAVAILABLE', message: 'The database is unavailable; try again shortly.' })
      return
    }
    logger.error({ err: coerceError(thrown), method: req.method, url: req.originalUrl }, 'Unhandled error')
    sendError(res, 500, { code: 'INTERNAL_ERROR', message: 'Something went wrong on our side.' })
  }
}

const UNAVAILABLE_CODES = new Set([
  'SQLITE_BUSY',
  'SQLITE_READONLY',
  'SQLITE_READONLY_DBMOVED',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_IOERR_WRITE',
  'SQLITE_IOERR_READ',
  'SQLITE_FULL',
  'ECONNREFUSED',
  'ECONNRESET',
  '57P01', // admin_shutdown
  '57P03', // cannot_connect_now
  '08006',
  '08001',
  '08003',
])

/** A write that referred to a missing row (SQLite and PostgreSQL codes). */
export function isForeignKeyViolation(thrown: unknown): boolean {
  const code = (thrown as { code?: string })?.code
  return code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503'
}

/** Database errors that mean "not now" rather than "your request is wrong". */
export function isDatabaseUnavailable(thrown: unknown): boolean {
  const code = (thrown as { code?: string })?.code
  if (code && (UNAVAILABLE_CODES.has(code) || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_READONLY'))) return true
  const name = (thrown as { name?: string })?.name
  if (name === 'KnexTimeoutError') return true
  // node-postgres reports a connection lost mid-query (server restart, killed backend) with no
  // code at all, so these two are recognised by their fixed messages.
  const message = (thrown as { message?: unknown })?.message
  return !code && typeof message === 'string' && PG_CONNECTION_LOST.test(message)
}

const PG_CONNECTION_LOST = /Connection terminated unexpectedly|Client has encountered a connection error and is not queryable/
