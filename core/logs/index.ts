import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import type { Clock } from '../clock.js'
import type { AttemptOutcome, JobAttempt, JobLogLine, JobLogMessage, LogLevel } from '../contract.js'
import type { Logger } from '../logger.js'
import { LogFanout, type LogSubscription } from './LogFanout.js'
import { attemptError, isLogLevel, normaliseFields, normaliseMessage } from './logLine.js'
import { LogStore } from './LogStore.js'
import { LogWriter } from './LogWriter.js'
import { encodeLogNotice, LOG_CHANNEL } from './notice.js'

export { LOG_LINE_CAP, MAX_LINE_BYTES } from './logLine.js'
export { LOG_CHANNEL, decodeLogNotice } from './notice.js'
export type { LogSubscription } from './LogFanout.js'

export interface JobLogsOptions {
  knex: Knex
  clock: Clock
  logger: Logger
  /** This process's id: recorded on attempts, and the sender of its NOTIFYs. */
  instanceId: string
  /** Finds a job's post id (and who may see it) by its UUID. */
  findJob(jobId: string): Promise<{ id: number; jobId: string; createdBy: number | null; attempts: number } | null>
  flushMs?: number
  /** job_log messages per subscription: at most one per this many ms (default 100). */
  fanoutIntervalMs?: number
}

/** One line as a processor or a handle gives it. */
export interface LogInput {
  jobId: string
  postId: number
  attempt: number
  message: unknown
  fields?: unknown
  level?: unknown
}

/** The end of an attempt, as the runtime knows it. */
export interface AttemptEnd {
  outcome: AttemptOutcome
  error?: unknown
}

export interface AttemptRecorder {
  end(end: AttemptEnd): void
}

/**
 * Job logs and attempt history (issue 15): batched line writes, reads for the REST routes, the
 * live fan-out behind the WebSocket `subscribe_logs`, and the attempt rows the runtime records.
 * Writes never throw into the caller: a failed write is logged (a job's log is not worth
 * failing the job for).
 */
export class JobLogs {
  readonly store: LogStore
  readonly writer: LogWriter
  readonly fanout: LogFanout
  private readonly postIds = new Map<string, number>()
  private readonly waiting = new Map<string, LogInput[]>()
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly trackedAttempt = new Map<string, number>()
  private readonly trackedRecorders = new Map<string, AttemptRecorder>()

  constructor(private readonly options: JobLogsOptions) {
    this.store = new LogStore(options.knex)
    this.fanout = new LogFanout({
      source: {
        lastSeq: async (postId) => (await this.store.logState(postId)).lastSeq,
        readLines: (postId, after, limit) => this.store.readLines(postId, after, limit),
      },
      clock: options.clock,
      logger: options.logger,
      intervalMs: options.fanoutIntervalMs,
    })
    this.writer = new LogWriter({
      store: this.store,
      logger: options.logger,
      flushMs: options.flushMs,
      onWritten: (written) => this.fanout.written(written),
      wanted: (jobId) => this.fanout.follows(jobId),
      notify: (lastSeqs) => ({ channel: LOG_CHANNEL, payloads: encodeLogNotice(options.instanceId, lastSeqs) }),
    })
  }

  get instanceId(): string {
    return this.options.instanceId
  }

  /** Queues one line (written within ~50 ms with the others). An unknown level is `info`. */
  log(input: LogInput): void {
    this.writer.write({
      jobId: input.jobId,
      postId: input.postId,
      attempt: input.attempt,
      at: this.options.clock.now(),
      level: isLogLevel(input.level) ? input.level : 'info',
      message: normaliseMessage(input.message),
      fields: normaliseFields(input.fields),
    })
  }

  /**
   * A line of a job known only by its UUID (a tracked job's handle): the post id is looked up
   * once; lines logged meanwhile wait, in order. Lines of an unknown job are dropped.
   */
  logByJobId(jobId: string, line: Omit<LogInput, 'jobId' | 'postId' | 'attempt'> & { attempt?: number }): void {
    const postId = this.postIds.get(jobId)
    const input = { ...line, jobId, postId: postId ?? 0, attempt: line.attempt ?? this.trackedAttempt.get(jobId) ?? 0 }
    if (postId !== undefined) return this.log(input)
    const queue = this.waiting.get(jobId)
    if (queue) return void queue.push(input)
    this.waiting.set(jobId, [input])
    this.track(
      this.options.findJob(jobId).then(
        (job) => {
          const lines = this.waiting.get(jobId) ?? []
          this.waiting.delete(jobId)
          if (!job) return
          this.rememberPostId(jobId, job.id)
          for (const pending of lines) this.log({ ...pending, postId: job.id, attempt: pending.attempt || job.attempts })
        },
        (error) => {
          this.waiting.delete(jobId)
          this.options.logger.warn({ err: error, jobId }, 'Could not find the job of a log line')
        },
      ),
    )
  }

  rememberPostId(jobId: string, postId: number): void {
    if (this.postIds.size >= 10_000) this.postIds.delete(this.postIds.keys().next().value!)
    this.postIds.set(jobId, postId)
  }

  /** Lines after `after` (oldest first) and how many the job dropped. */
  async readLogs(postId: number, after: number, limit: number): Promise<{ lines: JobLogLine[]; dropped: number; lastSeq: number }> {
    const [lines, state] = await Promise.all([this.store.readLines(postId, after, limit), this.store.logState(postId)])
    return { lines, dropped: state.dropped, lastSeq: state.lastSeq }
  }

  attempts(postId: number): Promise<JobAttempt[]> {
    return this.store.listAttempts(postId)
  }

  /** Records an attempt that starts now; `end()` records how it ended (once). Both are batched. */
  beginAttempt(input: { postId: number; jobId: string; attempt: number; instance?: string }): AttemptRecorder {
    this.rememberPostId(input.jobId, input.postId)
    const token = randomUUID()
    this.writer.attemptStarted({
      postId: input.postId,
      token,
      attempt: input.attempt,
      instance: input.instance ?? this.options.instanceId,
      startedAt: this.options.clock.now(),
    })
    let ended = false
    return {
      end: (end) => {
        if (ended) return
        ended = true
        this.writer.attemptFinished({ postId: input.postId, token, outcome: end.outcome, finishedAt: this.options.clock.now(), error: errorText(end.error) })
      },
    }
  }

  /** A tracked job (driven by a handle) started an attempt: record it, and stamp its lines with it. */
  trackedStarted(record: { id: number; jobId: string; attempts: number }): void {
    this.rememberPostId(record.jobId, record.id)
    this.trackedAttempt.set(record.jobId, record.attempts)
    this.trackedRecorders.get(record.jobId)?.end({ outcome: 'failed', error: 'Started again.' })
    this.trackedRecorders.set(record.jobId, this.beginAttempt({ postId: record.id, jobId: record.jobId, attempt: record.attempts }))
  }

  /** A tracked job's attempt ended (complete, fail, cancel through its handle or elsewhere). */
  trackedEnded(record: { id: number; jobId: string }, end: AttemptEnd): void {
    const recorder = this.trackedRecorders.get(record.jobId)
    this.trackedRecorders.delete(record.jobId)
    this.trackedAttempt.delete(record.jobId)
    if (recorder) recorder.end(end)
    else this.endOpenAttempt({ postId: record.id, ...end })
  }

  /** Ends the open attempt(s) of a job from outside the process that ran them (lease expiry, tracked jobs). */
  endOpenAttempt(input: { postId: number; attempt?: number } & AttemptEnd): void {
    const finishedAt = this.options.clock.now()
    // After what this process has queued (a start of that attempt may be waiting to be written).
    this.track(
      this.writer.flush().then(() => this.store.finishAttempt(
        { postId: input.postId, attempt: input.attempt },
        { outcome: input.outcome, finishedAt, error: errorText(input.error) },
      )),
    )
  }

  /** Live lines of a job (the caller checked visibility): every line committed from now on. */
  subscribe(job: { jobId: string; postId: number }, send: (message: JobLogMessage) => void): Promise<LogSubscription> {
    return this.fanout.subscribe(job, send)
  }

  findJob(jobId: string): Promise<{ id: number; jobId: string; createdBy: number | null } | null> {
    return this.options.findJob(jobId)
  }

  /** Writes every waiting line and attempt (tests, shutdown). */
  async flush(): Promise<void> {
    do {
      while (this.inFlight.size) await Promise.allSettled([...this.inFlight])
      await this.writer.flush()
    } while (this.inFlight.size)
  }

  async close(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight])
    await this.writer.close()
    this.fanout.close()
  }

  /** Keeps a background write for flush/close; its failure is logged, never thrown. */
  private track<T>(promise: Promise<T>): Promise<T | undefined> {
    const tracked: Promise<T | undefined> = promise.catch((error) => {
      this.options.logger.warn({ err: error }, 'Could not record a job attempt or log line')
      return undefined
    })
    this.inFlight.add(tracked)
    void tracked.finally(() => this.inFlight.delete(tracked))
    return tracked
  }
}

function errorText(error: unknown): string | null {
  const value = attemptError(error)
  return value === null ? null : JSON.stringify(value)
}

/** Maps why an attempt was aborted (the runtime's reasons) to the outcome recorded. */
export function outcomeOfAbort(reason: string): AttemptOutcome {
  switch (reason) {
    case 'cancelled':
      return 'cancelled'
    case 'timeout':
      return 'timeout'
    case 'shutdown':
      return 'shutdown'
    case 'paused':
      return 'paused'
    case 'lease_lost':
      return 'lease_expired'
    default:
      return 'failed'
  }
}

// ---------------------------------------------------------------------------------------------
// A job handle reaches the log service of its registry (JobHandle is built by RegisterJobs).

const services = new WeakMap<object, JobLogs>()

export function attachJobLogs(registry: object, logs: JobLogs): void {
  services.set(registry, logs)
}

export function jobLogsFor(registry: object): JobLogs | undefined {
  return services.get(registry)
}

export type { LogLevel }
