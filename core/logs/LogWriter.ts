import type { Logger } from '../logger.js'
import type { JobLogLine } from '../contract.js'
import { LOG_LINE_CAP, type PendingLine } from './logLine.js'
import type { AttemptFinish, AttemptStart, LogStore } from './LogStore.js'

export interface LogWriterOptions {
  store: LogStore
  logger: Logger
  /** Lines wait at most this long before they are written (default 50 ms). */
  flushMs?: number
  /** This many waiting lines are written on the next turn, without waiting for flushMs. */
  flushLines?: number
  /** Lines waiting in this process, all jobs together; beyond it new lines are dropped (counted). */
  maxPendingLines?: number
  /** Called after each commit with the lines written, per job id (of the jobs `wanted` accepts). */
  onWritten?(written: Map<string, JobLogLine[]>): void
  wanted?(jobId: string): boolean
  /** A NOTIFY for other instances, sent in the flush's transaction (PostgreSQL). */
  notify?(lastSeqs: Map<string, number>): { channel: string; payloads: string[] } | null
}

interface JobBuffer {
  jobId: string
  lines: PendingLine[]
}

/**
 * Batches log lines: a line costs a push onto its job's buffer; every `flushMs` (or sooner, when
 * many lines wait) one transaction writes all of them, with the attempts that started or ended
 * meanwhile (LogStore.write). One flush runs at a
 * time. A job holds fewer than 2 × LOG_LINE_CAP waiting lines (only the newest LOG_LINE_CAP could
 * survive the cap anyway): the oldest are dropped and counted, as are lines beyond `maxPendingLines`.
 */
export class LogWriter {
  private buffers = new Map<number, JobBuffer>()
  private unwritten = new Map<number, number>()
  private starts: AttemptStart[] = []
  private finishes: AttemptFinish[] = []
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

  /** An attempt's start or end, written with the next flush (its end never before its start). */
  attemptStarted(start: AttemptStart): void {
    if (this.closed) return
    this.starts.push(start)
    this.schedule()
  }

  /** Written on the next turn: a client that sees the job settle reads its attempt's outcome. */
  attemptFinished(finish: AttemptFinish): void {
    if (this.closed) return
    this.finishes.push(finish)
    this.schedule(true)
  }

  private countUnwritten(postId: number, n: number) {
    this.unwritten.set(postId, (this.unwritten.get(postId) ?? 0) + n)
  }

  private schedule(soon = false) {
    if (this.flushing) return
    if (soon || this.pendingCount >= this.flushLines) {
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
    if (!this.hasWork()) return
    const buffers = this.buffers
    const unwritten = this.unwritten
    const starts = this.starts
    const finishes = this.finishes
    this.buffers = new Map()
    this.unwritten = new Map()
    this.starts = []
    this.finishes = []
    this.pendingCount = 0
    const lines: PendingLine[] = []
    for (const buffer of buffers.values()) for (const line of buffer.lines) lines.push(line)
    this.flushing = this.options.store
      .write({ lines, unwritten, starts, finishes, notify: this.options.notify, wanted: this.options.wanted })
      .then(
        (result) => {
          if (result.written.size) this.options.onWritten?.(result.written)
        },
        (error) => {
          this.options.logger.error({ err: error, lines: lines.length, attempts: starts.length + finishes.length }, 'Could not write job log lines and attempts')
        },
      )
      .finally(() => {
        this.flushing = undefined
        if (this.hasWork()) this.schedule(this.finishes.length > 0)
      })
    await this.flushing
  }

  private hasWork(): boolean {
    return this.pendingCount > 0 || this.unwritten.size > 0 || this.starts.length > 0 || this.finishes.length > 0
  }

  /** Writes what waits, then refuses new lines. */
  async close(): Promise<void> {
    do await this.flush()
    while (this.flushing || this.hasWork())
    this.closed = true
    clearTimeout(this.timer)
    if (this.immediate) clearImmediate(this.immediate)
  }
}
