import type { Job, LogLevel } from '../contract.js'
import { jobLogsFor } from '../logs/index.js'
import { JobNotFoundError } from '../errors.js'
import type { RegisterJobs } from './RegisterJobs.js'
import { toPublicJob } from './jobRecord.js'

/**
 * What `hooks.createJob()` returns: a plugin's grip on one tracked job. Every call goes through
 * RegisterJobs, so illegal calls throw ILLEGAL_TRANSITION and change nothing. `signal` aborts
 * when the job is cancelled or times out.
 */
export class JobHandle {
  constructor(
    private readonly registry: RegisterJobs,
    readonly jobId: string,
    readonly signal: AbortSignal,
  ) {}

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
    return toPublicJob(await this.registry.updateProgress(this.jobId, progress, metadata))
  }

  async complete(result?: unknown): Promise<Job> {
    return toPublicJob(await this.registry.complete(this.jobId, result))
  }

  async fail(message: string): Promise<Job> {
    return toPublicJob(await this.registry.fail(this.jobId, message))
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
