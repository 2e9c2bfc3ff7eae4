import type { Logger } from '../logger.js'
import type { JobLogLine } from '../contract.js'
import { LOG_LINE_CAP, type PendingLine } from './logLine.js'
import type { LogStore } from './LogStore.js'

export interface LogWriterOptions {
  store: LogStore
  logger: Logger
  /** Lines wait at most this long before they are written (default 50 ms). */
  flushMs?: number
  /** This many waiting lines are written on the next turn, without waiting for flushMs. */
  flushLines?: number
  /** Lines waiting in this process, all jobs together; beyond it new lines are dropped (counted). */
  maxPendingLines?: number
  /** Called after each commit with the lines written, per job id. */
  onWritten?(written: Map<string, JobLogLine[]>): void
  /** A NOTIFY for other instances, sent in the flush's transaction (PostgreSQL). */
  notify?(lastSeqs: Map<string, number>): { channel: string; payloads: string[] } | null
}

interface JobBuffer {
  jobId: string
  lines: PendingLine[]
}

/**
 * Batches log lines: a line costs a push onto its job's buffer; every `flushMs` (or sooner, when
 * many lines wait) one transaction writes all of them (LogStore.writeLines). One flush runs at a
 * time. A job holds fewer than 2 × LOG_LINE_CAP waiting lines (only the newest LOG_LINE_CAP could
 * survive the cap anyway): the oldest are dropped and counted, as are lines beyond `maxPendingLines`.
 */
export class LogWriter {
  private buffers = new Map<number, JobBuffer>()
  private unwritten = new Map<number, number>()
  private pendingCount = 0
  private timer: NodeJS.Timeout | undefined
  private immediate: NodeJS.Immediate | undefined
  private flushing: Promise<void> | undefined
  private closed = false
  private readonly flushMs: number
  private readonly flushLines: number
  private readonly maxPendingLines: number

  constructor(private readonly options: LogWriterOptions) {
    this.flushMs = options.flushMs ?? 50
    this.flushLines = options.flushLines ?? 2000
    this.maxPendingLines = options.maxPendingLines ?? 200_000
  }

  get pending(): number {
    return this.pendingCount
  }

  write(line: PendingLine): void {
    if (this.closed) return
    let buffer = this.buffers.get(line.postId)
    if (!buffer) this.buffers.set(line.postId, (buffer = { jobId: line.jobId, lines: [] }))
    if (this.pendingCount >= this.maxPendingLines) {
      this.countUnwritten(line.postId, 1)
    } else {
      buffer.lines.push(line)
      this.pendingCount++
      if (buffer.lines.length >= 2 * LOG_LINE_CAP) {
        // Only the newest LOG_LINE_CAP can survive the cap: drop the rest in one splice (amortised).
        const excess = buffer.lines.length - LOG_LINE_CAP
        buffer.lines.splice(0, excess)
        this.pendingCount -= excess
        this.countUnwritten(line.postId, excess)
      }
    }
    this.schedule()
  }

  private countUnwritten(postId: number, n: number) {
    this.unwritten.set(postId, (this.unwritten.get(postId) ?? 0) + n)
  }

  private schedule() {
    if (this.flushing) return
    if (this.pendingCount >= this.flushLines) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined
        void this.flush()
      })
      return
    }
    if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        void this.flush()
      }, this.flushMs)
      this.timer.unref()
    }
  }

  /** Writes everything waiting now (and waits for a flush under way first). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.immediate) clearImmediate(this.immediate)
    this.immediate = undefined
    if (this.pendingCount === 0 && this.unwritten.size === 0) return
    const buffers = this.buffers
    const unwritten = this.unwritten
    this.buffers = new Map()
    this.unwritten = new Map()
    this.pendingCount = 0
    const lines: PendingLine[] = []
    for (const buffer of buffers.values()) for (const line of buffer.lines) lines.push(line)
    this.flushing = this.options.store
      .writeLines(lines, unwritten, this.options.notify)
      .then(
        (result) => {
          if (result.written.size) this.options.onWritten?.(result.written)
        },
        (error) => {
          this.options.logger.error({ err: error, lines: lines.length }, 'Could not write job log lines')
        },
      )
      .finally(() => {
        this.flushing = undefined
        if (this.pendingCount > 0 || this.unwritten.size > 0) this.schedule()
      })
    await this.flushing
  }

  /** Writes what waits, then refuses new lines. */
  async close(): Promise<void> {
    do await this.flush()
    while (this.flushing || this.pendingCount > 0)
    this.closed = true
    clearTimeout(this.timer)
    if (this.immediate) clearImmediate(this.immediate)
  }
}
