import express, { type Express, type Router } from 'express'
import helmet from 'helmet'
import { NotFoundError } from '../errors.js'
import type { Logger } from '../logger.js'
import { errorHandler, perClientConcurrency } from './middleware.js'

export interface HttpAppOptions {
  logger: Logger
  bodyLimitBytes: number
  trustProxy?: string
  corsOrigins?: string[]
  /**
   * Bearer authentication, run before the 404 of an unknown /api route: anonymous callers get 401
   * there too, so they cannot map which routes (plugins) exist.
   */
  authenticate?: express.RequestHandler
  /** Requests of one client (token, else address) in progress at once under /api (default 2). */
  concurrencyPerClient?: number
  /** Mounted at /api/v1, in order. */
  apiRouters: { path: string; router: Router }[]
  /** Extra mounts outside the API (admin UI, /metrics). */
  mounts?: { path: string; handler: express.RequestHandler | Router }[]
}

/** The Express app: security headers, JSON body parsing, the API routers, the error envelope. */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express()
  app.disable('x-powered-by')
  // Off unless configured: otherwise X-Forwarded-For would let a client choose its own address.
  if (options.trustProxy) app.set('trust proxy', options.trustProxy)
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: { 'img-src': ["'self'", 'data:'], 'connect-src': ["'self'", 'ws:', 'wss:'] },
      },
    }),
  )
  app.use((req, res, next) => {
    const started = process.hrtime.bigint()
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      options.logger.info({ method: req.method, url: req.originalUrl, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request')
    })
    next()
  })
  if (options.corsOrigins?.length) {
    const allowed = new Set(options.corsOrigins)
    app.use((req, res, next) => {
      const origin = req.headers.origin
      if (origin && allowed.has(origin)) {
        res.setHeader('Access-Control-Allow-Origin', origin)
        res.setHeader('Vary', 'Origin')
        res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type')
        res.setHeader('Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS')
        if (req.method === 'OPTIONS') {
          res.status(204).end()
          return
        }
      }
      next()
    })
  }

  // Before body parsing: a client's extra requests wait unread.
  app.use('/api', perClientConcurrency({ limit: options.concurrencyPerClient ?? 2, maxQueued: 1000 }))
  const api = express.Router()
  api.use(express.json({ limit: options.bodyLimitBytes, strict: true, type: ['application/json', 'application/*+json'] }))
  for (const { path, router } of options.apiRouters) api.use(path, router)
  const noSuchRoute: express.RequestHandler = () => {
    throw new NotFoundError('No such API route.')
  }
  const unknownApiRoute = options.authenticate ? [options.authenticate, noSuchRoute] : [noSuchRoute]
  api.use(...unknownApiRoute)
  app.use('/api/v1', api)
  // Other versions and paths under /api (/api/v2/...): the same JSON envelope, 401 before 404.
  app.use('/api', ...unknownApiRoute)
  for (const mount of options.mounts ?? []) app.use(mount.path, mount.handler)
  app.use(errorHandler(options.logger))
  return app
}
