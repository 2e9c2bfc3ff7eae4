import type { Logger } from '../logger.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'

/**
 * Retention: finished jobs (completed, completed_with_errors, failed, cancelled) whose
 * `completedAt` is older than `retentionDays` are deleted in batches (RegisterJobs.cleanupOldJobs,
 * 1000 per transaction), then what they left behind (batch items) is swept. Runs once at start
 * and then every `intervalMs` (default hourly) on an unref()ed timer; `retentionDays` 0 turns it off.
 */

export const DEFAULT_RETENTION_INTERVAL_MS = 3600_000

export interface RetentionOptions {
  jobs: RegisterJobs
  /** Deletes children whose parent job is gone (batch items); returns how many. */
  sweepOrphans(): Promise<number>
  logger: Logger
  retentionDays: number
  intervalMs?: number
}

export class Retention {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<{ jobs: number; items: number }> | undefined

  constructor(private readonly options: RetentionOptions) {}

  /** One cleanup pass (concurrent calls share it). */
  runOnce(): Promise<{ jobs: number; items: number }> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private async pass() {
    const { retentionDays, jobs, logger } = this.options
    if (retentionDays <= 0) return { jobs: 0, items: 0 }
    const deleted = await jobs.cleanupOldJobs(retentionDays)
    const items = await this.options.sweepOrphans()
    if (deleted || items) logger.info({ deleted, items, retentionDays }, 'Retention removed old finished jobs')
    return { jobs: deleted, items }
  }

  start(): void {
    if (this.timer || this.options.retentionDays <= 0) return
    const run = () => {
      this.runOnce().catch((error) => this.options.logger.error({ err: error }, 'Retention cleanup failed'))
    }
    this.timer = setInterval(run, this.options.intervalMs ?? DEFAULT_RETENTION_INTERVAL_MS)
    this.timer.unref()
    run()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running?.catch(() => undefined)
  }
}
