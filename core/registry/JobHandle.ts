import type { Job, LogLevel } from '../contract.js'
import { jobLogsFor } from '../logs/index.js'
import { JobNotFoundError } from '../errors.js'
import type { RegisterJobs } from './RegisterJobs.js'
import { toPublicJob } from './jobRecord.js'

/**
 * What `hooks.createJob()` returns: a plugin's grip on one tracked job. Every call goes through
 * RegisterJobs, so illegal calls throw ILLEGAL_TRANSITION and change nothing. `start()` begins an
 * attempt with a new token and a lease that this process renews while the job runs; the writes
 * of the handle carry that token, so once the job was paused, cancelled or recovered elsewhere
 * they are refused (LEASE_LOST). `signal` aborts (reason `'cancelled'`, `'timeout'` or
 * `'lease_lost'`) when the job is cancelled, times out or is lost; a pause calls the `onPause`
 * given to createJob instead, and a resumed job waits in `pending` until `start()` again.
 */
export class JobHandle {
  constructor(
    private readonly registry: RegisterJobs,
    readonly jobId: string,
    readonly signal: AbortSignal,
    private readonly token: () => string | undefined = () => undefined,
  ) {}

  private options() {
    const attemptToken = this.token()
    return attemptToken ? { attemptToken } : {}
  }

  async start(): Promise<Job> {
    const record = await this.registry.start(this.jobId)
    jobLogsFor(this.registry)?.trackedStarted(record)
    return toPublicJob(record)
  }

  /** A line of the job's log (`debug`, `info`, `warn`, `error`; written in batches, core/logs). */
  log(message: string, fields?: Record<string, unknown>, level?: LogLevel): void {
    jobLogsFor(this.registry)?.logByJobId(this.jobId, { message, fields, level })
  }

  async updateProgress(progress: number, metadata?: Record<string, unknown>): Promise<Job> {
    return toPublicJob(await this.registry.updateProgress(this.jobId, progress, metadata, this.options()))
  }

  async complete(result?: unknown): Promise<Job> {
    return toPublicJob(await this.registry.complete(this.jobId, result, this.options()))
  }

  async fail(message: string): Promise<Job> {
    return toPublicJob(await this.registry.fail(this.jobId, message, this.options()))
  }

  async cancel(): Promise<Job> {
    return toPublicJob(await this.registry.cancel(this.jobId))
  }

  /** The job as stored now. */
  async get(): Promise<Job> {
    const job = await this.registry.getJob(this.jobId)
    if (!job) throw new JobNotFoundError(this.jobId)
    return job
  }
}
