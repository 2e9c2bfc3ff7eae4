import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import type { ErrorCode, Job, JobLogMessage, PublicUser, ServerMessage } from '../contract.js'
import { systemClock, type Clock } from '../clock.js'
import type { AuthService } from '../auth/AuthService.js'
import { canSeeAllJobs } from '../auth/capabilities.js'
import { hashToken } from '../auth/passwords.js'
import { bearerToken } from '../http/middleware.js'
import type { Logger } from '../logger.js'

export interface RealtimeOptions {
  auth: AuthService
  logger: Logger
  clock?: Clock
  /** Browser origins allowed besides the server's own. */
  allowedOrigins?: string[]
  path?: string
  maxPayloadBytes?: number
  heartbeatMs?: number
  /** Progress updates of one job are sent at most once per this many ms (the last always is). */
  coalesceMs?: number
  /**
   * A client whose unsent bytes stay over this for `slowClientGraceMs` (or pass 16 times this at
   * once) is too slow and is dropped. A burst that a healthy client drains at once is not slowness.
   */
  maxBufferedBytes?: number
  slowClientGraceMs?: number
  maxConnectionsPerAddress?: number
  /** Log subscriptions (`subscribe_logs`) one socket may hold at once. */
  maxLogSubscriptions?: number
}

/** Live job logs (core/logs JobLogs): who may see a job, and its new lines. */
export interface LogFeed {
  findJob(jobId: string): Promise<{ id: number; jobId: string; createdBy: number | null } | null>
  subscribe(job: { jobId: string; postId: number }, send: (message: JobLogMessage) => void): Promise<{ close(): void }>
  /** Lines of a job another instance wrote, up to `seq` (core/cluster). */
  readonly fanout: { remote(jobId: string, seq: number): void; resync(): void }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

interface Client {
  socket: WebSocket
  user: PublicUser
  /** The session (hash of the bearer token) the socket was opened with. */
  session: string
  address: string
  alive: boolean
  /** When its unsent bytes first passed maxBufferedBytes (cleared once under again). */
  slowSince?: number
  /** Log subscriptions by job id (null while the subscription is being set up). */
  logs: Map<string, { close(): void } | null>
}

interface JobPacing {
  lastSentAt: number
  pending?: Job
  timer?: NodeJS.Timeout
}

/**
 * The WebSocket side of Jobpost: authenticates the HTTP upgrade (bearer token or single-use
 * ticket, Origin allowlist), then pushes `job_update` to every client allowed to see the job.
 * Progress is coalesced per job; status changes go out at once.
 */
export class RealtimeServer {
  private readonly wss: WebSocketServer
  private readonly clients = new Set<Client>()
  private readonly perAddress = new Map<string, number>()
  private readonly pacing = new Map<string, JobPacing>()
  private readonly clock: Clock
  private readonly options: Required<Omit<RealtimeOptions, 'allowedOrigins' | 'clock'>> & { allowedOrigins: string[] }
  private heartbeat?: NodeJS.Timeout
  private closed = false
  private logFeed?: LogFeed
  private readonly servers = new Map<Server, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>()

  constructor(options: RealtimeOptions) {
    this.clock = options.clock ?? systemClock
    this.options = {
      path: '/ws',
      maxPayloadBytes: 4 * 1024,
      heartbeatMs: 30_000,
      coalesceMs: 100,
      maxBufferedBytes: 1024 * 1024,
      slowClientGraceMs: 5000,
      maxConnectionsPerAddress: 50,
      maxLogSubscriptions: 20,
      ...options,
      allowedOrigins: options.allowedOrigins ?? [],
    }
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.options.maxPayloadBytes, perMessageDeflate: false })
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs)
    this.heartbeat.unref()
  }

  get clientCount(): number {
    return this.clients.size
  }

  /** Serves `subscribe_logs` / `unsubscribe_logs` from this feed (core/logs). */
  attachLogs(feed: LogFeed): void {
    this.logFeed = feed
  }

  /** The attached log feed (core/cluster hands it other instances' lines). */
  get logs(): LogFeed | undefined {
    return this.logFeed
  }

  attach(server: Server): void {
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head).catch((error) => {
        this.options.logger.error({ err: error }, 'WebSocket upgrade failed')
        refuse(socket, 503, 'DATABASE_UNAVAILABLE', 'Could not authenticate right now.')
      })
    }
    this.servers.set(server, onUpgrade)
    server.on('upgrade', onUpgrade)
  }

  /** Sends a job's new state to those allowed to see it; `progress` updates are coalesced. */
  publish(job: Job, kind: 'progress' | 'change'): void {
    // No socket (a worker process, or nobody watching): nothing to pace or send. A client that
    // connects later reads the jobs' current state.
    if (this.closed || this.clients.size === 0) return
    const now = this.clock.now()
    let pacing = this.pacing.get(job.jobId)
    if (!pacing) this.pacing.set(job.jobId, (pacing = { lastSentAt: -Infinity }))
    if (kind === 'change') {
      clearTimeout(pacing.timer)
      pacing.timer = undefined
      pacing.pending = undefined
      this.sendNow(job, pacing, now)
      return
    }
    const wait = pacing.lastSentAt + this.options.coalesceMs - now
    if (wait <= 0 && !pacing.timer) {
      this.sendNow(job, pacing, now)
      return
    }
    pacing.pending = job
    if (!pacing.timer) {
      pacing.timer = setTimeout(() => {
        const entry = this.pacing.get(job.jobId)
        if (!entry) return
        entry.timer = undefined
        const latest = entry.pending
        entry.pending = undefined
        if (latest) this.sendNow(latest, entry, this.clock.now())
      }, Math.max(0, wait))
      pacing.timer.unref()
    }
  }

  publishDeleted(jobId: string, createdBy: number | null): void {
    const pacing = this.pacing.get(jobId)
    if (pacing) clearTimeout(pacing.timer)
    this.pacing.delete(jobId)
    this.broadcast({ type: 'job_deleted', jobId }, { createdBy })
  }

  /** Closes every socket with 1001 (going away) and stops the timers. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeat)
    for (const pacing of this.pacing.values()) clearTimeout(pacing.timer)
    this.pacing.clear()
    for (const [server, listener] of this.servers) server.off('upgrade', listener)
    for (const client of this.clients) client.socket.close(1001, 'Server shutting down')
    await new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        for (const client of this.clients) client.socket.terminate()
        resolve()
      }, 1000)
      deadline.unref()
      const check = () => {
        if (this.clients.size === 0) {
          clearTimeout(deadline)
          resolve()
        } else setTimeout(check, 10).unref()
      }
      check()
    })
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }

  private sendNow(job: Job, pacing: JobPacing, now: number) {
    pacing.lastSentAt = now
    this.broadcast({ type: 'job_update', job }, job)
    if (job.status !== 'running' && job.status !== 'paused' && job.status !== 'pending') {
      // Final: nothing more will come for a while; forget the pacing once its window has passed.
      const timer = setTimeout(() => {
        if (this.pacing.get(job.jobId) === pacing && !pacing.timer) this.pacing.delete(job.jobId)
      }, this.options.coalesceMs)
      timer.unref()
    }
  }

  private broadcast(message: ServerMessage, job: { createdBy: number | null }) {
    const data = JSON.stringify(message)
    for (const client of this.clients) {
      if (!canSeeAllJobs(client.user) && job.createdBy !== client.user.id) continue
      if (client.socket.readyState !== client.socket.OPEN) continue
      if (this.dropIfTooSlow(client)) continue
      client.socket.send(data)
    }
  }

  /**
   * Drops a client whose unsent bytes stayed over maxBufferedBytes for slowClientGraceMs, or
   * passed 16 times that at once: it does not read what it is sent (or what it asks for).
   */
  private dropIfTooSlow(client: Client): boolean {
    const buffered = client.socket.bufferedAmount
    if (buffered <= this.options.maxBufferedBytes) {
      client.slowSince = undefined
      return false
    }
    const now = this.clock.now()
    client.slowSince ??= now
    if (buffered <= this.options.maxBufferedBytes * 16 && now - client.slowSince <= this.options.slowClientGraceMs) return false
    this.options.logger.warn({ user: client.user.id }, 'Dropping a WebSocket client that does not keep up')
    client.socket.terminate()
    return true
  }

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname !== this.options.path) return refuse(socket, 404, 'NOT_FOUND', 'No WebSocket endpoint here.')
    if (this.closed) return refuse(socket, 503, 'DATABASE_UNAVAILABLE', 'The server is shutting down.')
    if (!this.originAllowed(req)) return refuse(socket, 403, 'FORBIDDEN', 'This origin may not open a WebSocket.')
    const address = req.socket.remoteAddress ?? 'unknown'
    if ((this.perAddress.get(address) ?? 0) >= this.options.maxConnectionsPerAddress) {
      return refuse(socket, 429, 'RATE_LIMITED', 'Too many WebSocket connections from this address.')
    }
    // Hold the slot while authenticating, so that concurrent upgrades cannot all pass the check above.
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1)
    let accepted = false
    try {
      const identity = await this.authenticate(req, url)
      if (!identity) return refuse(socket, 401, 'UNAUTHENTICATED', 'A valid bearer token or ticket is required.')
      if (socket.destroyed) return
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        accepted = true
        this.accept(ws, identity.user, identity.session, address)
      })
    } finally {
      if (!accepted) this.release(address)
    }
  }

  private release(address: string) {
    const left = (this.perAddress.get(address) ?? 1) - 1
    if (left <= 0) this.perAddress.delete(address)
    else this.perAddress.set(address, left)
  }

  private async authenticate(req: IncomingMessage, url: URL): Promise<{ user: PublicUser; session: string } | null> {
    const token = bearerToken(req.headers.authorization)
    if (token) {
      const user = await this.options.auth.authenticate(token)
      return user ? { user, session: hashToken(token) } : null
    }
    const tickets = url.searchParams.getAll('ticket')
    if (tickets.length === 1 && tickets[0]!.length <= 128) return this.options.auth.redeemWsTicket(tickets[0]!)
    return null
  }

  /** Closes every socket of a session that ended (logout), with 4001; clients then re-authenticate. */
  closeSession(session: string): number {
    let closed = 0
    for (const client of this.clients) {
      if (client.session !== session) continue
      client.socket.close(SESSION_ENDED, 'Session ended')
      closed++
    }
    return closed
  }

  /** Closes sockets whose session was revoked or expired elsewhere (another instance, the CLI). */
  private async revalidateSessions() {
    const sessions = [...new Set([...this.clients].map((client) => client.session))]
    if (sessions.length === 0) return
    const live = await this.options.auth.liveSessions(sessions)
    for (const session of sessions) if (!live.has(session)) this.closeSession(session)
  }

  /** No Origin (not a browser) is fine; a browser's Origin must be ours or allowlisted. */
  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin
    if (origin === undefined) return true
    if (this.options.allowedOrigins.includes(origin)) return true
    const host = req.headers.host
    return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`)
  }

  private accept(socket: WebSocket, user: PublicUser, session: string, address: string) {
    const client: Client = { socket, user, session, address, alive: true, logs: new Map() }
    this.clients.add(client)
    socket.on('pong', () => {
      client.alive = true
    })
    socket.on('message', (raw, isBinary) => this.onMessage(client, raw.toString(), isBinary))
    socket.on('error', () => socket.terminate())
    socket.on('close', () => {
      for (const subscription of client.logs.values()) subscription?.close()
      client.logs.clear()
      this.clients.delete(client)
      this.release(address)
    })
    socket.send(JSON.stringify({ type: 'connected' } satisfies ServerMessage))
  }

  private onMessage(client: Client, text: string, isBinary: boolean) {
    // A client flooding messages without reading the replies would make us buffer them all.
    if (this.dropIfTooSlow(client)) return
    let message: unknown
    try {
      message = isBinary ? undefined : JSON.parse(text)
    } catch {
      message = undefined
    }
    if (message && typeof message === 'object' && (message as { type?: unknown }).type === 'ping') {
      client.socket.send(JSON.stringify({ type: 'pong' } satisfies ServerMessage))
      return
    }
    const type = message && typeof message === 'object' ? (message as { type?: unknown }).type : undefined
    if ((type === 'subscribe_logs' || type === 'unsubscribe_logs') && this.logFeed) {
      const jobId = (message as { jobId?: unknown }).jobId
      if (typeof jobId !== 'string' || !UUID.test(jobId)) return this.sendError(client, 'VALIDATION_FAILED', null, 'jobId must be a job UUID.')
      if (type === 'unsubscribe_logs') {
        client.logs.get(jobId)?.close()
        client.logs.delete(jobId)
        return
      }
      void this.subscribeLogs(client, jobId, this.logFeed)
      return
    }
    const reply: ServerMessage = { type: 'error', error: { code: 'VALIDATION_FAILED', message: 'Unknown message; send {"type":"ping"}.' } }
    client.socket.send(JSON.stringify(reply))
  }

  /** A job's live log for this client, if it may see the job (else NOT_FOUND, as over REST). */
  private async subscribeLogs(client: Client, jobId: string, feed: LogFeed) {
    if (client.logs.has(jobId)) return
    if (client.logs.size >= this.options.maxLogSubscriptions) {
      return this.sendError(client, 'RATE_LIMITED', jobId, `At most ${this.options.maxLogSubscriptions} log subscriptions per connection.`)
    }
    client.logs.set(jobId, null)
    const stillWanted = () => client.logs.has(jobId) && client.socket.readyState === client.socket.OPEN
    try {
      const job = await feed.findJob(jobId)
      if (!job || (!canSeeAllJobs(client.user) && job.createdBy !== client.user.id)) {
        client.logs.delete(jobId)
        return this.sendError(client, 'NOT_FOUND', jobId, 'No such job.')
      }
      if (!stillWanted()) return void client.logs.delete(jobId)
      const subscription = await feed.subscribe({ jobId, postId: job.id }, (message) => {
        if (client.socket.readyState !== client.socket.OPEN || this.dropIfTooSlow(client)) return
        client.socket.send(JSON.stringify(message))
      })
      if (stillWanted() && client.logs.get(jobId) === null) client.logs.set(jobId, subscription)
      else subscription.close()
    } catch (error) {
      client.logs.delete(jobId)
      this.options.logger.warn({ err: error, jobId }, 'Could not subscribe to a job log')
      this.sendError(client, 'DATABASE_UNAVAILABLE', jobId, 'Could not subscribe right now.')
    }
  }

  private sendError(client: Client, code: ErrorCode, jobId: string | null, message: string) {
    if (client.socket.readyState !== client.socket.OPEN) return
    const reply: ServerMessage = { type: 'error', code, jobId, error: { code, message } }
    client.socket.send(JSON.stringify(reply))
  }

  private beat() {
    this.revalidateSessions().catch((error) => this.options.logger.warn({ err: error }, 'Could not revalidate WebSocket sessions'))
    for (const client of this.clients) {
      if (!client.alive) {
        client.socket.terminate()
        continue
      }
      client.alive = false
      client.socket.ping()
    }
  }
}

/** Close code sent when the socket's session (bearer token) ended: log in again. */
export const SESSION_ENDED = 4001

function refuse(socket: Duplex, status: number, code: string, message: string) {
  if (socket.destroyed) return
  const body = JSON.stringify({ success: false, error: { code, message } })
  const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ?? 'Error'
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
  socket.destroy()
}
