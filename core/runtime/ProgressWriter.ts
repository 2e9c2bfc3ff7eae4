import type { Clock } from '../clock.js'

/** At most one progress write per this many ms per job (≈ 10 a second). */
export const PROGRESS_WRITE_INTERVAL_MS = 100

export interface ProgressWriterOptions {
  clock: Clock
  /** Writes one progress value (and the metadata merged since the last write). */
  write(progress: number, metadata: Record<string, unknown> | undefined): Promise<void>
  /** A write failed for a reason other than the attempt having lost the job. */
  onError(error: unknown): void
  intervalMs?: number
}

/**
 * Progress of one attempt, written behind: a processor may report progress as often as it
 * likes; at most one write per interval reaches the database (and so the WebSocket clients), the
 * metadata of skipped calls is merged into the next write, and the last value is always written
 * (`flush()` before the attempt settles). A flood of calls costs a timer and an object each.
 */
export class ProgressWriter {
  private pending: { progress: number; metadata?: Record<string, unknown> } | null = null
  private inFlight: Promise<void> | null = null
  private timer: NodeJS.Timeout | undefined
  private lastWriteAt = -Infinity
  private stopped = false
  /** Writes made (tests count them). */
  writes = 0

  constructor(private readonly options: ProgressWriterOptions) {}

  push(progress: number, metadata?: Record<string, unknown>): void {
    if (this.stopped) return
    const merged = metadata || this.pending?.metadata ? { ...this.pending?.metadata, ...metadata } : undefined
    this.pending = { progress, metadata: merged }
    this.schedule()
  }

  /** Writes what is pending now and waits for writes under way. */
  async flush(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    while (this.inFlight || this.pending) {
      if (this.inFlight) await this.inFlight
      else this.writeNow()
    }
  }

  /** Drops what is pending (the attempt was aborted: its writes are refused anyway). */
  stop(): void {
    this.stopped = true
    this.pending = null
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule() {
    if (this.timer || this.inFlight) return
    const wait = this.lastWriteAt + (this.options.intervalMs ?? PROGRESS_WRITE_INTERVAL_MS) - this.options.clock.now()
    if (wait <= 0) return this.writeNow()
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.writeNow()
    }, wait)
    this.timer.unref()
  }

  private writeNow() {
    const next = this.pending
    if (!next || this.inFlight) return
    this.pending = null
    this.writes++
    this.lastWriteAt = this.options.clock.now()
    this.inFlight = this.options
      .write(next.progress, next.metadata)
      .catch((error: unknown) => this.options.onError(error))
      .finally(() => {
        this.inFlight = null
        if (this.pending && !this.stopped) this.schedule()
      })
  }
}
