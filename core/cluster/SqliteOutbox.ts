import type { Knex } from 'knex'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { ClusterEvent } from './PgNotifier.js'
import { collapseEvent } from './pendingEvents.js'

export interface SqliteOutboxOptions {
  knex: Knex
  clock: Clock
  logger: Logger
  /** This process's id; its own rows are never read back. */
  instanceId: string
  /** Called with the events other processes wrote (never with ours). */
  onEvents(events: ClusterEvent[]): void
  /** How often `PRAGMA data_version` is read (default 50 ms): one cheap statement, no I/O. */
  pollMs?: number
  /** Events are gathered this long and written as one INSERT (progress of one job collapses). */
  flushMs?: number
  /** Rows older than this are deleted (default 60 s). */
  keepMs?: number
}

const KIND_CODE: Record<ClusterEvent['kind'], string> = { change: 'c', progress: 'p', deleted: 'd' }
const READ_BATCH = 1000

/**
 * Job events between processes on one SQLite file (what LISTEN/NOTIFY does on PostgreSQL): each
 * process appends the events it emits to `job_outbox` (migration 009), batched per flush; every
 * process polls `PRAGMA data_version`, which changes only when another connection committed, and
 * then reads the rows after the last one it saw. So `npm start` and `npm run worker` on one file
 * show each other's updates to their WebSocket clients, and a cancel or pause made in one
 * aborts the attempt running in the other at once.
 */
export class SqliteOutbox {
  private pending = new Map<string, ClusterEvent>()
  private flushTimer?: NodeJS.Timeout
  private pollTimer?: NodeJS.Timeout
  private pruneTimer?: NodeJS.Timeout
  private lastSeq = 0
  private dataVersion: number | null = null
  private polling = false
  private flushing: Promise<void> | undefined
  private closed = false

  constructor(private readonly options: SqliteOutboxOptions) {}

  async start(): Promise<void> {
    const row = (await this.options.knex('job_outbox').max({ seq: 'seq' }).first()) as { seq: number | null } | undefined
    this.lastSeq = Number(row?.seq ?? 0)
    this.dataVersion = await this.readDataVersion()
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs ?? 50)
    this.pollTimer.unref()
    const keepMs = this.options.keepMs ?? 60_000
    this.pruneTimer = setInterval(() => {
      this.options
        .knex('job_outbox')
        .where('at', '<', this.options.clock.now() - keepMs)
        .delete()
        .catch((error: unknown) => this.options.logger.warn({ err: error }, 'Could not prune the job outbox'))
    }, Math.max(1000, Math.round(keepMs / 6)))
    this.pruneTimer.unref()
  }

  /** Queues an event for the other processes (written within flushMs, collapsed per job). */
  publish(event: ClusterEvent): void {
    if (this.closed) return
    collapseEvent(this.pending, event)
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined
        void this.flush()
      }, this.options.flushMs ?? 5)
      this.flushTimer.unref()
    }
  }

  /** Writes what is queued now (one INSERT). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing
    if (this.pending.size === 0) return
    const events = [...this.pending.values()]
    this.pending.clear()
    const at = this.options.clock.now()
    const rows = events.map((event) => ({
      sender: this.options.instanceId,
      job_id: event.jobId,
      kind: event.kind === 'change' && event.claimable ? 'w' : KIND_CODE[event.kind],
      created_by: event.kind === 'deleted' ? (event.createdBy ?? null) : null,
      at,
    }))
    this.flushing = (async () => {
      try {
        for (let i = 0; i < rows.length; i += 200) await this.options.knex('job_outbox').insert(rows.slice(i, i + 200))
      } catch (error) {
        this.options.logger.warn({ err: error }, 'Could not write job events to the outbox')
      }
    })().finally(() => {
      this.flushing = undefined
    })
    return this.flushing
  }

  /** Reads what other processes wrote, when another connection committed since the last look. */
  async poll(): Promise<void> {
    if (this.polling || this.closed) return
    this.polling = true
    try {
      const version = await this.readDataVersion()
      if (version === this.dataVersion) return
      this.dataVersion = version
      for (;;) {
        const rows = (await this.options
          .knex('job_outbox')
          .select('seq', 'sender', 'job_id', 'kind', 'created_by')
          .where('seq', '>', this.lastSeq)
          .orderBy('seq')
          .limit(READ_BATCH)) as { seq: number; sender: string; job_id: string; kind: string; created_by: number | null }[]
        if (rows.length === 0) break
        this.lastSeq = Number(rows.at(-1)!.seq)
        const events = rows.filter((row) => row.sender !== this.options.instanceId).map(toEvent)
        if (events.length && !this.closed) this.options.onEvents(events)
        if (rows.length < READ_BATCH) break
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'Could not read the job outbox')
    } finally {
      this.polling = false
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.flush().catch(() => undefined)
    this.closed = true
    clearTimeout(this.flushTimer)
    clearInterval(this.pollTimer)
    clearInterval(this.pruneTimer)
  }

  private async readDataVersion(): Promise<number> {
    const rows = (await this.options.knex.raw('PRAGMA data_version')) as { data_version: number }[]
    return Number(rows[0]?.data_version ?? 0)
  }
}

function toEvent(row: { job_id: string; kind: string; created_by: number | null }): ClusterEvent {
  switch (row.kind) {
    case 'd':
      return { jobId: row.job_id, kind: 'deleted', createdBy: row.created_by }
    case 'p':
      return { jobId: row.job_id, kind: 'progress' }
    case 'w':
      return { jobId: row.job_id, kind: 'change', claimable: true }
    default:
      return { jobId: row.job_id, kind: 'change' }
  }
}
