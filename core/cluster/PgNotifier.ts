import pg from 'pg'
import type { Logger } from '../logger.js'
import { collapseEvent } from './pendingEvents.js'

/** What one instance tells the others about a job: its id and what kind of change happened. */
export type ClusterEventKind = 'change' | 'progress' | 'deleted'

export interface ClusterEvent {
  jobId: string
  kind: ClusterEventKind
  /** Only for `deleted` (the job can no longer be read to learn who may see it). */
  createdBy?: number | null
  /** The job became pending: a worker elsewhere may claim it now. */
  claimable?: boolean
}

export interface PgNotifierOptions {
  connectionString: string
  /** This instance's id; notifications it sent itself are skipped. */
  instanceId: string
  logger: Logger
  /** Called with the events other instances sent (never with our own). */
  onEvents(events: ClusterEvent[]): void
  /** Called after a reconnect: notifications sent while we were away are lost. */
  onReconnect?(): void
  channel?: string
  /** More channels to LISTEN on this connection, each with its handler (job log lines: core/logs). */
  channels?: Record<string, (payload: string) => void>
  /** Events are gathered this long and sent as one NOTIFY (progress of one job collapses). */
  flushMs?: number
  reconnectMinMs?: number
  reconnectMaxMs?: number
}

/** `application_name` of the LISTEN connection. */
export const LISTEN_APPLICATION_NAME = 'jobpost-listen'

/** PostgreSQL limits a NOTIFY payload to 8000 bytes; stay under it. */
const MAX_PAYLOAD_BYTES = 7500
const KIND_CODE: Record<ClusterEventKind, string> = { change: 'c', progress: 'p', deleted: 'd' }
/** `w` is a change that made the job claimable. */
const CLAIMABLE_CODE = 'w'
const CODE_KIND: Record<string, ClusterEventKind> = { c: 'change', w: 'change', p: 'progress', d: 'deleted' }

/** Wire format: `{"s": sender, "e": [[jobId, kindCode, createdBy?], ...]}`. */
interface Payload {
  s: string
  e: [string, string, (number | null)?][]
}

/**
 * Cross-instance job events over PostgreSQL LISTEN/NOTIFY, on one dedicated connection (a pooled
 * connection cannot LISTEN: it is handed to other queries). The payload carries only job ids and
 * event kinds; each receiver reads the job itself and applies its own per-client visibility.
 * The connection is re-opened with backoff when it drops.
 */
export class PgNotifier {
  readonly channel: string
  private client?: pg.Client
  private connected = false
  private closed = false
  private pending = new Map<string, ClusterEvent>()
  private flushTimer?: NodeJS.Timeout
  private reconnectTimer?: NodeJS.Timeout
  private reconnectDelay: number
  private flushing?: Promise<void>

  constructor(private readonly options: PgNotifierOptions) {
    this.channel = options.channel ?? 'jobpost_jobs'
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.channel)) throw new Error(`Invalid NOTIFY channel ${JSON.stringify(this.channel)}.`)
    this.reconnectDelay = options.reconnectMinMs ?? 100
  }

  get isConnected(): boolean {
    return this.connected
  }

  /** Opens the LISTEN connection; rejects when the first attempt fails (the caller decides). */
  async start(): Promise<void> {
    await this.connect()
  }

  /** Queues an event for the other instances (sent within flushMs, collapsed per job). */
  publish(event: ClusterEvent): void {
    if (this.closed) return
    collapseEvent(this.pending, event)
    if (!this.flushTimer && this.connected) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined
        void this.flush()
      }, this.options.flushMs ?? 5)
      this.flushTimer.unref()
    }
  }

  /** Sends what is queued now (also used by close). */
  async flush(): Promise<void> {
    // One flush at a time keeps NOTIFY order equal to publish order.
    while (this.flushing) await this.flushing
    if (!this.connected || this.pending.size === 0) return
    const events = [...this.pending.values()]
    this.pending.clear()
    this.flushing = this.send(events).finally(() => {
      this.flushing = undefined
    })
    return this.flushing
  }

  async close(): Promise<void> {
    if (this.closed) return
    try {
      await this.flush()
    } catch {
      // closing anyway
    }
    this.closed = true
    clearTimeout(this.flushTimer)
    clearTimeout(this.reconnectTimer)
    const client = this.client
    this.client = undefined
    this.connected = false
    if (client) await client.end().catch(() => undefined)
  }

  private async send(events: ClusterEvent[]) {
    const client = this.client
    if (!client) return
    for (const payload of encode(this.options.instanceId, events)) {
      try {
        await client.query('SELECT pg_notify($1, $2)', [this.channel, payload])
      } catch (error) {
        this.options.logger.warn({ err: error }, 'Could not NOTIFY the other instances')
        return
      }
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: 5000,
      // Named, so that operators can tell it apart in pg_stat_activity.
      application_name: LISTEN_APPLICATION_NAME,
    })
    client.on('notification', (message) => {
      if (message.channel !== this.channel && message.payload) return void this.options.channels?.[message.channel]?.(message.payload)
      if (message.channel !== this.channel || !message.payload) return
      const events = decode(message.payload, this.options.instanceId)
      if (events.length) this.options.onEvents(events)
    })
    client.on('error', (error) => {
      this.options.logger.warn({ err: error }, 'The LISTEN connection failed; reconnecting')
      this.dropped(client)
    })
    client.on('end', () => this.dropped(client))
    this.client = client
    try {
      await client.connect()
      await client.query(`LISTEN ${this.channel}`)
      for (const channel of Object.keys(this.options.channels ?? {})) {
        if (/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) await client.query(`LISTEN ${channel}`)
      }
    } catch (error) {
      this.client = undefined
      await client.end().catch(() => undefined)
      throw error
    }
    if (this.closed) {
      await client.end().catch(() => undefined)
      return
    }
    this.connected = true
    this.reconnectDelay = this.options.reconnectMinMs ?? 100
    if (this.pending.size) void this.flush()
  }

  private dropped(client: pg.Client) {
    if (this.client !== client) return
    this.client = undefined
    this.connected = false
    void client.end().catch(() => undefined)
    if (!this.closed) this.scheduleReconnect()
  }

  private scheduleReconnect() {
    if (this.reconnectTimer || this.closed) return
    const delay = this.reconnectDelay
    this.reconnectDelay = Math.min(this.options.reconnectMaxMs ?? 5000, delay * 2)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      this.connect().then(
        () => {
          if (this.closed) return
          this.options.logger.info('The LISTEN connection is back')
          this.options.onReconnect?.()
        },
        (error) => {
          this.options.logger.warn({ err: error, retryInMs: this.reconnectDelay }, 'Could not reconnect the LISTEN connection')
          this.scheduleReconnect()
        },
      )
    }, delay)
    this.reconnectTimer.unref()
  }
}

/** Splits events into payloads under PostgreSQL's NOTIFY size limit. */
export function encode(sender: string, events: ClusterEvent[]): string[] {
  const payloads: string[] = []
  let batch: Payload['e'] = []
  let size = sender.length + 20
  for (const event of events) {
    const code = event.kind === 'change' && event.claimable ? CLAIMABLE_CODE : KIND_CODE[event.kind]
    const entry: Payload['e'][number] =
      event.kind === 'deleted' ? [event.jobId, code, event.createdBy ?? null] : [event.jobId, code]
    const entrySize = JSON.stringify(entry).length + 1
    if (batch.length && size + entrySize > MAX_PAYLOAD_BYTES) {
      payloads.push(JSON.stringify({ s: sender, e: batch } satisfies Payload))
      batch = []
      size = sender.length + 20
    }
    batch.push(entry)
    size += entrySize
  }
  if (batch.length) payloads.push(JSON.stringify({ s: sender, e: batch } satisfies Payload))
  return payloads
}

/** Parses a payload; our own and malformed ones give nothing. */
export function decode(text: string, self: string): ClusterEvent[] {
  let payload: Payload
  try {
    payload = JSON.parse(text) as Payload
  } catch {
    return []
  }
  if (!payload || payload.s === self || !Array.isArray(payload.e)) return []
  const events: ClusterEvent[] = []
  for (const entry of payload.e) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || entry[0].length > 64) continue
    const code = String(entry[1])
    const kind = CODE_KIND[code]
    if (!kind) continue
    const createdBy = typeof entry[2] === 'number' ? entry[2] : null
    if (kind === 'deleted') events.push({ jobId: entry[0], kind, createdBy })
    else if (code === CLAIMABLE_CODE) events.push({ jobId: entry[0], kind, claimable: true })
    else events.push({ jobId: entry[0], kind })
  }
  return events
}
