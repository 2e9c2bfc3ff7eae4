import os from 'node:os'
import type { Clock } from '../clock.js'
import { coerceError, IllegalTransitionError, LeaseLostError, UnrecoverableError } from '../errors.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { Logger } from '../logger.js'
import { outcomeOfAbort, type AttemptEnd, type JobLogs } from '../logs/index.js'
import { toPublicJob, type JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import { backoffDelay } from './backoff.js'
import { CompletedWithErrors, type ProcessorRegistry, type RegisteredProcessor } from './ProcessorRegistry.js'

export interface JobRuntimeOptions {
  jobs: RegisterJobs
  processors: ProcessorRegistry
  hooks: HookRegistry
  clock: Clock
  logger: Logger
  /** Jobs running at once in this process, all types together. */
  concurrency: number
  /** How often to look for due jobs when nothing woke us (other processes, delayed jobs). */
  pollIntervalMs?: number
  /** Lease of one attempt; renewed every leaseMs / 3 while the handler runs. */
  leaseMs?: number
  /** How often expired leases are recovered. */
  recoveryIntervalMs?: number
  workerId?: string
  /** Job logs and attempt history (core/logs): `ctx.log` lines and one row per attempt. */
  logs?: JobLogs
}

interface Running {
  record: JobRecord
  processor: RegisteredProcessor
  controller: AbortController
  /** Resolves when the attempt stopped counting against concurrency. */
  done: Promise<void>
}

class AttemptAborted extends Error {
  constructor(readonly reason: 'cancelled' | 'timeout' | 'shutdown' | 'lease_lost') {
    super(reason)
  }
}

/**
 * The worker: claims due jobs with a lease, runs their processors with an AbortSignal, and settles
 * them through RegisterJobs (which fences every write with the attempt token). One claim runs at a
 * time; a claim is triggered by local events (enqueue, resume, retry, a finished attempt), by a
 * poll for work of other processes and delayed jobs, and by timers for known run times.
 */
export class JobRuntime {
  readonly workerId: string
  private readonly running = new Map<string, Running>()
  private readonly pollIntervalMs: number
  private readonly leaseMs: number
  private readonly recoveryIntervalMs: number
  private started = false
  private stopping = false
  private claiming = false
  private claimAgain = false
  private claimLoopDone: Promise<void> = Promise.resolve()
  private timers = new Set<NodeJS.Timeout>()
  private unsubscribers: (() => void)[] = []
  private idleWaiters: (() => void)[] = []
  private nextDueTimer: NodeJS.Timeout | undefined
  private nextDueTimerAt: number | null = null

  constructor(private readonly options: JobRuntimeOptions) {
    this.workerId = options.workerId ?? `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`
    this.pollIntervalMs = options.pollIntervalMs ?? 1000
    this.leaseMs = options.leaseMs ?? 30_000
    this.recoveryIntervalMs = options.recoveryIntervalMs ?? Math.max(1000, Math.round(this.leaseMs / 2))
  }

  get runningCount(): number {
    return this.running.size
  }

  get isStarted(): boolean {
    return this.started && !this.stopping
  }

  /** Starts claiming; recovers expired leases at once (a previous process may have died). */
  start(): void {
    if (this.started) return
    this.started = true
    const { hooks } = this.options
    const wakeFor = (job: { type: string; status: string }) => {
      if (job.status === 'pending' && this.options.processors.has(job.type)) this.wake()
    }
    this.unsubscribers.push(
      hooks.on('job:created', ({ job }) => wakeFor(job)),
      hooks.on('job:resumed', ({ job }) => wakeFor(job)),
      hooks.on('job:updated', ({ job }) => wakeFor(job)),
      hooks.on('job:retry', ({ job, delayMs }) => {
        if (job.status === 'pending') this.wakeAt(delayMs)
      }),
      hooks.on('job:cancelled', ({ job }) => this.abortLocal(job.jobId, 'cancelled')),
      this.options.processors.onRegister(() => this.wake()),
    )
    this.every(this.pollIntervalMs, () => this.wake())
    this.every(Math.max(250, Math.round(this.leaseMs / 3)), () => this.heartbeat())
    this.every(this.recoveryIntervalMs, () => this.recover())
    void this.recover().then(() => this.wake())
  }

  /** Looks for due jobs now (coalesced: at most one claim runs at a time). */
  wake(): void {
    if (!this.started || this.stopping) return
    if (this.claiming) {
      this.claimAgain = true
      return
    }
    this.claiming = true
    // On the next turn of the event loop, so that every attempt settled in this turn (a batch)
    // has freed its slot and one claim fills them all. stop() waits for it: a claim that lands
    // after stop() counted the running attempts would run jobs nobody drains or releases.
    this.claimLoopDone = new Promise<void>((resolve) => {
      setImmediate(() => {
        const loop = this.stopping ? Promise.resolve() : this.claimLoop()
        void loop.finally(() => {
          this.claiming = false
          resolve()
        })
      })
    })
  }

  /**
   * Stops claiming, lets running attempts finish for up to `graceMs`, then aborts the rest and
   * gives their jobs back to the queue (the interrupted attempt is not counted).
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    if (!this.started || this.stopping) return
    this.stopping = true
    for (const timer of this.timers) clearTimeout(timer), clearInterval(timer)
    this.timers.clear()
    for (const unsubscribe of this.unsubscribers) unsubscribe()
    this.unsubscribers = []
    const graceMs = options.graceMs ?? 10_000
    // Jobs of a claim in flight join `running` first, then drain or are released with the rest.
    await this.claimLoopDone
    const drained = this.whenIdle()
    let graceTimer: NodeJS.Timeout | undefined
    const graceOver = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceMs)
      graceTimer.unref()
    })
    const outcome = await Promise.race([drained.then(() => 'drained' as const), graceOver])
    clearTimeout(graceTimer)
    if (outcome === 'timeout') {
      for (const entry of this.running.values()) entry.controller.abort(new AttemptAborted('shutdown'))
      await this.whenIdle()
    }
  }

  /** Resolves once no attempt is running in this process. */
  whenIdle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private every(ms: number, work: () => unknown) {
    const timer = setInterval(() => {
      void Promise.resolve()
        .then(work)
        .catch((error) => this.options.logger.error({ err: error }, 'Runtime timer failed'))
    }, ms)
    timer.unref()
    this.timers.add(timer)
  }

  private wakeAt(delayMs: number) {
    if (this.stopping) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.wake()
    }, Math.max(0, delayMs) + 5)
    timer.unref()
    this.timers.add(timer)
  }

  /** One timer for the earliest delayed job known to this process, so it starts on time. */
  private wakeForNextDue() {
    const due = this.options.jobs.nextDueAt
    if (due === null || due === this.nextDueTimerAt) return
    if (this.nextDueTimer) {
      clearTimeout(this.nextDueTimer)
      this.timers.delete(this.nextDueTimer)
    }
    this.nextDueTimerAt = due
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.nextDueTimer = undefined
      this.nextDueTimerAt = null
      this.wake()
    }, Math.max(0, due - this.options.clock.now()) + 1)
    timer.unref()
    this.timers.add(timer)
    this.nextDueTimer = timer
  }

  private async claimLoop() {
    do {
      this.claimAgain = false
      try {
        const free = this.options.concurrency - this.running.size
        if (free <= 0) return
        const slots = new Map<string, number>()
        for (const processor of this.options.processors.list()) {
          const busy = [...this.running.values()].filter((entry) => entry.processor.type === processor.type).length
          slots.set(processor.type, Math.min(free, processor.concurrency - busy))
        }
        const claimed = await this.options.jobs.claimDueJobs({ slots, limit: free, leaseMs: this.leaseMs })
        for (const record of claimed) this.run(record)
        this.wakeForNextDue()
        // A full batch may mean more is due.
        if (claimed.length > 0 && claimed.length === free) this.claimAgain = true
      } catch (error) {
        this.options.logger.error({ err: error }, 'Could not claim jobs')
        return
      }
    } while (this.claimAgain && !this.stopping)
  }

  private run(record: JobRecord) {
    const processor = this.options.processors.get(record.type)
    if (!processor) return
    const controller = new AbortController()
    let finish!: () => void
    const done = new Promise<void>((resolve) => (finish = resolve))
    const entry: Running = { record, processor, controller, done }
    this.running.set(record.jobId, entry)
    void this.attempt(entry).finally(() => {
      this.running.delete(record.jobId)
      finish()
      if (this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
      this.wake()
    })
  }

  private async attempt(entry: Running) {
    const { record, processor, controller } = entry
    const { jobs, logger } = this.options
    const token = record.attemptToken ?? undefined
    const timeoutMs = record.timeout ?? processor.timeout
    let timer: NodeJS.Timeout | undefined
    if (timeoutMs) {
      timer = setTimeout(() => controller.abort(new AttemptAborted('timeout')), timeoutMs)
      timer.unref()
    }
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true })
    })
    aborted.catch(() => undefined)
    const log = logger.child({ jobId: record.jobId, type: record.type, attempt: record.attempts, worker: this.workerId })
    const jobLogs = this.options.logs
    const recorder = jobLogs?.beginAttempt({ postId: record.id, jobId: record.jobId, attempt: record.attempts, instance: this.workerId })
    let end: AttemptEnd = { outcome: 'completed' }
    try {
      const job = { ...toPublicJob(record), data: record.data }
      const result = await Promise.race([
        Promise.resolve().then(() =>
          processor.handler(job, {
            signal: controller.signal,
            attempt: record.attempts,
            log: (message, fields, level) =>
              jobLogs
                ? jobLogs.log({ jobId: record.jobId, postId: record.id, attempt: record.attempts, message, fields, level })
                : log.info(fields ?? {}, message),
            updateProgress: async (progress, metadata) => {
              if (controller.signal.aborted) return
              // The attempt's record follows its own writes, so each one needs no read first.
              entry.record = await jobs.updateProgress(record.jobId, progress, metadata, { attemptToken: token, current: entry.record })
            },
          }),
        ),
        aborted,
      ])
      const failure = returnedFailure(result)
      if (failure) end = { outcome: 'failed', error: failure.message }
      if (failure) await this.settleFailure(entry.record, processor, failure)
      else if (result instanceof CompletedWithErrors) await jobs.completeAttempt(entry.record, result.result, { withErrors: true })
      // Group-committed with the other completions of this turn, fenced by the attempt token.
      else await jobs.completeAttempt(entry.record, result)
    } catch (thrown) {
      end = thrown instanceof AttemptAborted ? { outcome: outcomeOfAbort(thrown.reason) } : { outcome: 'failed', error: thrown }
      if (end.outcome === 'timeout') end.error = `Timed out after ${timeoutMs} ms.`
      if (thrown instanceof AttemptAborted) {
        await this.settleAbort(entry.record, processor, thrown)
      } else {
        const error = coerceError(thrown)
        await this.settleFailure(entry.record, processor, {
          message: error.message,
          retryable: !(thrown instanceof UnrecoverableError) && (thrown as { retryable?: unknown }).retryable !== false,
          retryDelay: numberOr((thrown as { retryDelay?: unknown }).retryDelay),
        })
      }
    } finally {
      clearTimeout(timer)
      recorder?.end(end)
    }
  }

  private async settleFailure(record: JobRecord, processor: RegisteredProcessor, failure: Failure) {
    const { jobs } = this.options
    const token = record.attemptToken ?? undefined
    await this.guard(record, async () => {
      if (failure.retryable && record.attempts < record.maxAttempts) {
        const delay = failure.retryDelay ?? backoffDelay(processor.backoff, record.attempts)
        await jobs.requeue(record.jobId, `Attempt ${record.attempts} failed: ${failure.message}`, delay, { attemptToken: token, current: record })
      } else {
        await jobs.fail(record.jobId, failure.message, { attemptToken: token, current: record })
      }
    })
  }

  private async settleAbort(record: JobRecord, processor: RegisteredProcessor, aborted: AttemptAborted) {
    const { jobs } = this.options
    const token = record.attemptToken ?? undefined
    switch (aborted.reason) {
      case 'cancelled':
      case 'lease_lost':
        return // already settled by whoever cancelled it or took it over
      case 'timeout': {
        const timeoutMs = record.timeout ?? processor.timeout
        return this.settleFailure(record, processor, { message: `Timed out after ${timeoutMs} ms.`, retryable: true })
      }
      case 'shutdown':
        return this.guard(record, () =>
          jobs.requeue(record.jobId, 'Interrupted by a worker shutdown.', 0, { attemptToken: token, current: record, countAttempt: false }),
        )
      default: {
        const exhaustive: never = aborted.reason
        return exhaustive
      }
    }
  }

  /** A settle that lost its lease, or raced a cancel, is expected: log it, never crash. */
  private async guard(record: JobRecord, settle: () => Promise<unknown>) {
    try {
      await settle()
    } catch (error) {
      if (error instanceof LeaseLostError || error instanceof IllegalTransitionError) {
        this.options.logger.warn({ jobId: record.jobId, code: error.code }, 'Settle refused: the attempt no longer owns the job')
        return
      }
      this.options.logger.error({ err: error, jobId: record.jobId }, 'Could not settle a job')
    }
  }

  /** Whether this process is running an attempt of the job. */
  isRunning(jobId: string): boolean {
    return this.running.has(jobId)
  }

  /**
   * Aborts this process's attempt of a job that was cancelled elsewhere (another instance, seen
   * through core/cluster), at once rather than at the next heartbeat.
   */
  abortCancelled(jobId: string): void {
    this.abortLocal(jobId, 'cancelled')
  }

  private abortLocal(jobId: string, reason: 'cancelled' | 'lease_lost') {
    this.running.get(jobId)?.controller.abort(new AttemptAborted(reason))
  }

  /** Renews the leases of running attempts; an attempt whose lease is gone is aborted. */
  private async heartbeat() {
    const entries = [...this.running.values()].filter((entry) => entry.record.attemptToken)
    if (entries.length === 0) return
    const ours = await this.options.jobs.renewLeases(
      entries.map((entry) => entry.record.attemptToken!),
      this.leaseMs,
    )
    for (const entry of entries) {
      if (!ours.has(entry.record.id)) {
        // Cancelled elsewhere, or recovered by another process after we stalled.
        const current = await this.options.jobs.getJobRecord(entry.record.jobId)
        this.abortLocal(entry.record.jobId, current?.status === 'cancelled' ? 'cancelled' : 'lease_lost')
      }
    }
  }

  /** Jobs whose worker died: back to pending (attempt counted) or failed when none are left. */
  async recover(): Promise<number> {
    let recovered = 0
    const expired = await this.options.jobs.findExpiredLeases(100)
    for (const record of expired) {
      if (this.running.has(record.jobId)) continue
      const processor = this.options.processors.get(record.type)
      const delay = processor ? backoffDelay(processor.backoff, record.attempts) : 0
      const result = await this.options.jobs.recoverExpiredLease(record, delay)
      if (result) {
        this.options.logs?.endOpenAttempt({ postId: record.id, attempt: record.attempts, outcome: 'lease_expired', error: 'The lease expired: the process running the attempt stopped or stalled.' })
        recovered++
        this.options.logger.warn({ jobId: record.jobId, status: result.status }, 'Recovered a job whose lease expired')
      }
    }
    return recovered
  }
}

interface Failure {
  message: string
  retryable: boolean
  retryDelay?: number
}

/** The seed's processors return `{ success: false, error, retryable, retryDelay }` to fail. */
function returnedFailure(result: unknown): Failure | null {
  if (!result || typeof result !== 'object') return null
  const r = result as { success?: unknown; retryable?: unknown; error?: unknown; retryDelay?: unknown }
  if (r.success !== false && r.retryable !== false) return null
  return {
    message: typeof r.error === 'string' && r.error ? r.error : 'The processor reported a failure.',
    retryable: r.retryable !== false,
    retryDelay: numberOr(r.retryDelay),
  }
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined
}
