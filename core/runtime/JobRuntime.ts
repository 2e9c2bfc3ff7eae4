import os from 'node:os'
import type { Clock } from '../clock.js'
import { LOG_LEVELS, type LogLevel } from '../contract.js'
import { coerceError, IllegalTransitionError, LeaseLostError, readProperty, UnrecoverableError, ValidationError } from '../errors.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import { holdFaultHandlers, inPlugin } from '../hooks/pluginScope.js'
import type { Logger } from '../logger.js'
import { assertJsonValue } from '../registry/jobInput.js'
import { outcomeOfAbort, type AttemptEnd, type JobLogs } from '../logs/index.js'
import { toPublicJob, type JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import { backoffDelay, clampRetryDelay } from './backoff.js'
import { CompletedWithErrors, type ProcessorRegistry, type RegisteredProcessor } from './ProcessorRegistry.js'
import { ProgressWriter } from './ProgressWriter.js'

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
  /** How long `stop()` lets running attempts finish before it aborts them (SHUTDOWN_GRACE_MS). */
  shutdownGraceMs?: number
  workerId?: string
  /** Job logs and attempt history (core/logs): `ctx.log` lines and one row per attempt. */
  logs?: JobLogs
}

interface Running {
  record: JobRecord
  processor: RegisteredProcessor
  controller: AbortController
  /** Resolves when the attempt stopped counting against concurrency (its handler returned). */
  done: Promise<void>
  /** Resolves once the attempt is settled (the job is free; the handler may still run). */
  settled: Promise<void>
  /** Resolves once the handler returned or threw. */
  handlerDone?: Promise<void>
  /** The attempt was settled (or given up) after an abort while its handler still ran. */
  abandoned?: boolean
}

/** Why an attempt was aborted: the `signal.reason` its processor sees. */
export type AbortReason = 'cancelled' | 'paused' | 'timeout' | 'shutdown' | 'lease_lost'
const ABORT_REASONS: readonly AbortReason[] = ['cancelled', 'paused', 'timeout', 'shutdown', 'lease_lost']
const isAbortReason = (value: unknown): value is AbortReason => ABORT_REASONS.includes(value as AbortReason)

/** Handlers that ignore an abort at shutdown are waited for this long at most, then left behind. */
const ABANDON_WAIT_MS = 2000

/**
 * The worker: claims due jobs with a lease, runs their processors with an AbortSignal, and settles
 * them through RegisterJobs (which fences every write with the attempt token). One claim runs at a
 * time; a claim is triggered by local events (enqueue, resume, retry, a finished attempt), by a
 * poll for work of other processes and delayed jobs, and by timers for known run times.
 */
export class JobRuntime {
  readonly workerId: string
  private readonly running = new Map<string, Running>()
  /**
   * Attempts already settled (timeout, cancel, pause) whose handler has not returned: their
   * slots stay taken until it does, so a processor that ignores its signal cannot overrun the
   * concurrency.
   */
  private readonly lingering = new Set<Running>()
  private readonly pollIntervalMs: number
  private readonly shutdownGraceMs: number
  private heartbeatTimer: NodeJS.Timeout | undefined
  private drainListeners: (() => void)[] = []
  private releaseFaultHandlers: (() => void) | undefined
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
    this.shutdownGraceMs = options.shutdownGraceMs ?? 10_000
    // Plugin code runs in this process whether or not it runs jobs: contain its faults from now on.
    this.releaseFaultHandlers = holdFaultHandlers(options.logger)
  }

  /** Attempts holding a slot (including settled ones whose handler has not returned yet). */
  get runningCount(): number {
    return this.running.size + this.lingering.size
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
      this.options.processors.onRegister(() => this.wake()),
    )
    // Kept while a shutdown drains: attempts still running must still hear a cancel or pause.
    this.drainListeners.push(
      hooks.on('job:cancelled', ({ job }) => this.abortLocal(job.jobId, 'cancelled')),
      hooks.on('job:paused', ({ job }) => this.abortLocal(job.jobId, 'paused')),
    )
    this.every(this.pollIntervalMs, () => this.wake())
    this.heartbeatTimer = this.every(Math.max(250, Math.round(this.leaseMs / 3)), () => this.heartbeat())
    this.every(this.recoveryIntervalMs, () => this.recover())
    void this.recover()
      .catch((error) => this.options.logger.error({ err: error }, 'Could not recover expired leases at start'))
      .then(() => this.wake())
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
   * Stops claiming, lets running attempts finish for up to `graceMs` (SHUTDOWN_GRACE_MS) while
   * their leases are still renewed and cancel/pause still reach them, then aborts the rest and
   * gives their jobs back to the queue (the interrupted attempt is not counted; each is logged).
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    if (!this.started) this.releaseFaultHandlers?.()
    if (!this.started || this.stopping) return
    this.stopping = true
    for (const timer of this.timers) if (timer !== this.heartbeatTimer) clearTimeout(timer), clearInterval(timer)
    for (const unsubscribe of this.unsubscribers) unsubscribe()
    this.unsubscribers = []
    const graceMs = options.graceMs ?? this.shutdownGraceMs
    // Jobs of a claim in flight join `running` first, then drain or are released with the rest.
    await this.claimLoopDone
    if (this.running.size > 0) {
      this.options.logger.info({ running: this.running.size, graceMs }, 'Shutdown: waiting for running attempts')
    }
    const drained = this.whenSettled()
    let graceTimer: NodeJS.Timeout | undefined
    const graceOver = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceMs)
      graceTimer.unref()
    })
    const outcome = await Promise.race([drained.then(() => 'drained' as const), graceOver])
    clearTimeout(graceTimer)
    if (outcome === 'timeout') {
      for (const entry of this.running.values()) entry.controller.abort('shutdown')
      await this.whenSettled()
    }
    // Heartbeats and listeners stop only now: nothing of ours is running any more.
    for (const timer of this.timers) clearTimeout(timer), clearInterval(timer)
    this.timers.clear()
    for (const unsubscribe of this.drainListeners) unsubscribe()
    this.drainListeners = []
    if (this.lingering.size > 0) {
      // Settled already; their handlers ignored the abort. Give them a moment, then leave them.
      let waitTimer: NodeJS.Timeout | undefined
      const waited = await Promise.race([
        this.whenIdle().then(() => true),
        new Promise<false>((resolve) => {
          waitTimer = setTimeout(() => resolve(false), Math.min(ABANDON_WAIT_MS, graceMs))
          waitTimer.unref()
        }),
      ])
      clearTimeout(waitTimer)
      if (!waited) {
        this.options.logger.warn(
          { jobs: [...this.lingering].map((entry) => entry.record.jobId) },
          'Shutdown: handlers that ignored their abort are still running; their jobs were already settled',
        )
      }
    }
    this.releaseFaultHandlers?.()
  }

  /** Resolves once no handler is running in this process (settled attempts included). */
  whenIdle(): Promise<void> {
    if (this.running.size === 0 && this.lingering.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Resolves once every attempt of this process is settled (handlers may still be returning). */
  private async whenSettled(): Promise<void> {
    while (this.running.size > 0) await Promise.race([...this.running.values()].map((entry) => entry.settled))
  }

  private every(ms: number, work: () => unknown): NodeJS.Timeout {
    const timer = setInterval(() => {
      void Promise.resolve()
        .then(work)
        .catch((error) => this.options.logger.error({ err: error }, 'Runtime timer failed'))
    }, ms)
    timer.unref()
    this.timers.add(timer)
    return timer
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
        const free = this.options.concurrency - this.runningCount
        if (free <= 0) return
        const slots = new Map<string, number>()
        const holding = [...this.running.values(), ...this.lingering]
        for (const processor of this.options.processors.list()) {
          const busy = holding.filter((entry) => entry.processor.type === processor.type).length
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
    let settle!: () => void
    const settled = new Promise<void>((resolve) => (settle = resolve))
    const entry: Running = { record, processor, controller, done, settled }
    this.running.set(record.jobId, entry)
    void this.attempt(entry)
      .catch((error) => this.options.logger.error({ err: error, jobId: record.jobId }, 'An attempt failed to settle'))
      .then(() => {
        // Settled: the job is free; the slot stays taken until the handler really returns.
        if (this.running.get(record.jobId) === entry) this.running.delete(record.jobId)
        if (entry.abandoned) this.lingering.add(entry)
        settle()
        return entry.abandoned ? entry.handlerDone : undefined
      })
      .finally(() => {
        this.lingering.delete(entry)
        finish()
        if (this.running.size === 0 && this.lingering.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
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
      timer = setTimeout(() => controller.abort('timeout'), timeoutMs)
      timer.unref()
    }
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(new AttemptAborted(controller.signal.reason)), { once: true })
    })
    aborted.catch(() => undefined)
    const log = logger.child({ jobId: record.jobId, type: record.type, attempt: record.attempts, worker: this.workerId })
    const jobLogs = this.options.logs
    const recorder = jobLogs?.beginAttempt({ postId: record.id, jobId: record.jobId, attempt: record.attempts, instance: this.workerId })
    let end: AttemptEnd = { outcome: 'completed' }
    const progress = new ProgressWriter({
      clock: this.options.clock,
      // The attempt's record follows its own writes, so each one needs no read first.
      write: async (value, metadata) => {
        entry.record = await jobs.updateProgress(record.jobId, value, metadata, { attemptToken: token, current: entry.record })
      },
      onError: (error) => {
        if (error instanceof LeaseLostError || error instanceof IllegalTransitionError) return
        log.warn({ err: error }, 'Could not write progress')
      },
    })
    controller.signal.addEventListener('abort', () => progress.stop(), { once: true })
    // Plugin code runs in its plugin's scope: its later faults are reported with its name.
    const handler = inPlugin(processor.owner, () =>
      Promise.resolve().then(() =>
        processor.handler(
          { ...toPublicJob(record), data: record.data, checkpoint: record.checkpoint },
          {
            signal: controller.signal,
            attempt: record.attempts,
            log: (message, fields, level) =>
              jobLogs
                ? jobLogs.log({ jobId: record.jobId, postId: record.id, attempt: record.attempts, message, fields, level })
                : log[isLogLevel(level) ? level : 'info'](fields ?? {}, message),
            updateProgress: async (value, metadata) => {
              if (typeof value !== 'number' || Number.isNaN(value)) throw new ValidationError('progress must be a number from 0 to 100.')
              if (metadata !== undefined && (!metadata || typeof metadata !== 'object' || Array.isArray(metadata))) {
                throw new ValidationError('metadata must be an object.')
              }
              if (metadata !== undefined) assertJsonValue(metadata, 'metadata', 64 * 1024)
              if (controller.signal.aborted) return
              progress.push(value, metadata)
            },
            checkpoint: async (value) => {
              if (controller.signal.aborted) throw new LeaseLostError(record.jobId)
              await jobs.checkpoint(entry.record, value)
            },
          },
        ),
      ),
    )
    entry.handlerDone = handler.then(
      (result) => {
        if (controller.signal.aborted) {
          log.warn({ reason: controller.signal.reason, result: describeLate(result) }, `A late result after the attempt was aborted (${String(controller.signal.reason)}) was ignored`)
        }
      },
      (thrown: unknown) => {
        if (controller.signal.aborted && !isAbortReason(thrown) && !isInstance(thrown, AttemptAborted)) {
          log.warn({ reason: controller.signal.reason, err: coerceError(thrown) }, 'A late error after the attempt was aborted was ignored')
        }
      },
    )
    try {
      const result = await Promise.race([handler, aborted])
      const failure = returnedFailure(result)
      if (failure) end = { outcome: 'failed', error: failure.message }
      // Recorded before the settle: a client that sees the job settle then reads the attempt's outcome.
      recorder?.end(end)
      await progress.flush()
      if (failure) await this.settleFailure(entry.record, processor, failure)
      else if (result instanceof CompletedWithErrors) await jobs.completeAttempt(entry.record, result.result, { withErrors: true })
      // Group-committed with the other completions of this turn, fenced by the attempt token.
      else await jobs.completeAttempt(entry.record, result)
    } catch (thrown) {
      if (isInstance(thrown, AttemptAborted) || controller.signal.aborted) {
        entry.abandoned = true
        const reason = isAbortReason(controller.signal.reason) ? controller.signal.reason : 'lease_lost'
        end = { outcome: outcomeOfAbort(reason) }
        if (end.outcome === 'timeout') end.error = `Timed out after ${timeoutMs} ms.`
        recorder?.end(end)
        await this.settleAbort(entry.record, processor, reason)
      } else {
        const error = coerceError(thrown)
        end = { outcome: 'failed', error }
        recorder?.end(end)
        await progress.flush()
        await this.settleFailure(entry.record, processor, {
          message: error.message,
          retryable: !isInstance(thrown, UnrecoverableError) && readProperty(thrown, 'retryable') !== false,
          retryDelay: clampRetryDelay(readProperty(thrown, 'retryDelay')),
        })
      }
    } finally {
      clearTimeout(timer)
      progress.stop()
      recorder?.end(end)
    }
  }

  private async settleFailure(record: JobRecord, processor: RegisteredProcessor, failure: Failure) {
    const { jobs } = this.options
    const token = record.attemptToken ?? undefined
    await this.guard(record, async () => {
      if (failure.retryable && record.attempts < record.maxAttempts) {
        const delay = clampRetryDelay(failure.retryDelay) ?? backoffDelay(processor.backoff, record.attempts)
        await jobs.requeue(record.jobId, `Attempt ${record.attempts} failed: ${failure.message}`, delay, { attemptToken: token, current: record })
      } else {
        await jobs.fail(record.jobId, failure.message, { attemptToken: token, current: record })
      }
    })
  }

  private async settleAbort(record: JobRecord, processor: RegisteredProcessor, reason: AbortReason) {
    const { jobs } = this.options
    const token = record.attemptToken ?? undefined
    switch (reason) {
      case 'cancelled':
      case 'paused':
      case 'lease_lost':
        return // already settled by whoever cancelled or paused it, or took it over
      case 'timeout': {
        const timeoutMs = record.timeout ?? processor.timeout
        return this.settleFailure(record, processor, { message: `Timed out after ${timeoutMs} ms.`, retryable: true })
      }
      case 'shutdown':
        return this.guard(record, async () => {
          await jobs.requeue(record.jobId, 'Interrupted by a worker shutdown.', 0, { attemptToken: token, current: record, countAttempt: false })
          this.options.logger.warn(
            { jobId: record.jobId, type: record.type, attempt: record.attempts, worker: this.workerId },
            'Shutdown: the attempt did not finish within the grace period; the job was given back to the queue (attempt not counted)',
          )
        })
      default: {
        const exhaustive: never = reason
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

  /** Aborts this process's attempt of a job paused elsewhere (another instance), at once. */
  abortPaused(jobId: string): void {
    this.abortLocal(jobId, 'paused')
  }

  private abortLocal(jobId: string, reason: AbortReason) {
    const entry = this.running.get(jobId)
    if (entry && !entry.controller.signal.aborted) entry.controller.abort(reason)
  }

  /** Renews the leases of running attempts; an attempt whose lease is gone is aborted. */
  private async heartbeat() {
    const entries = [...this.running.values()].filter((entry) => entry.record.attemptToken && !entry.controller.signal.aborted)
    if (entries.length === 0) return
    const ours = await this.options.jobs.renewLeases(
      entries.map((entry) => entry.record.attemptToken!),
      this.leaseMs,
    )
    for (const entry of entries) {
      if (!ours.has(entry.record.id)) {
        // Cancelled elsewhere, or recovered by another process after we stalled.
        const current = await this.options.jobs.getJobRecord(entry.record.jobId)
        this.abortLocal(entry.record.jobId, current?.status === 'cancelled' ? 'cancelled' : current?.status === 'paused' ? 'paused' : 'lease_lost')
      }
    }
  }

  /**
   * Jobs whose worker (or, for a tracked job, the process holding its handle) died: back to
   * pending (attempt counted) or failed when none are left; a tracked job fails. One record at a
   * time: a record that cannot be recovered is logged and skipped, the others still are.
   */
  async recover(): Promise<number> {
    let recovered = 0
    const expired = await this.options.jobs.findExpiredLeases(100)
    for (const record of expired) {
      if (this.running.has(record.jobId)) continue
      try {
        const processor = this.options.processors.get(record.type)
        const delay = processor ? backoffDelay(processor.backoff, record.attempts) : 0
        const result = await this.options.jobs.recoverExpiredLease(record, delay)
        if (result) {
          this.options.logs?.endOpenAttempt({ postId: record.id, attempt: record.attempts, outcome: 'lease_expired', error: 'The lease expired: the process running the attempt stopped or stalled.' })
          recovered++
          this.options.logger.warn({ jobId: record.jobId, status: result.status, attempts: result.attempts }, 'Recovered a job whose lease expired')
        }
      } catch (error) {
        this.options.logger.error({ err: error, jobId: record.jobId }, 'Could not recover a job whose lease expired; skipped')
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
  if (!result || typeof result !== 'object' || isInstance(result, CompletedWithErrors)) return null
  const success = readProperty(result, 'success')
  const retryable = readProperty(result, 'retryable')
  if (success !== false && retryable !== false) return null
  const error = readProperty(result, 'error')
  return {
    message: typeof error === 'string' && error ? error : 'The processor reported a failure.',
    retryable: retryable !== false,
    retryDelay: clampRetryDelay(readProperty(result, 'retryDelay')),
  }
}

/** What an abort rejects the attempt's race with. */
class AttemptAborted extends Error {
  constructor(readonly reason: unknown) {
    super(`Attempt aborted: ${String(reason)}`)
  }
}

/** `instanceof` that never throws (a hostile proxy's getPrototypeOf trap may). */
function isInstance(value: unknown, type: abstract new (...args: never[]) => unknown): boolean {
  try {
    return value instanceof type
  } catch {
    return false
  }
}

function isLogLevel(value: unknown): value is LogLevel {
  return LOG_LEVELS.includes(value as LogLevel)
}

/** A short, never-throwing description of a late result, for the log. */
function describeLate(result: unknown): string {
  try {
    const text = JSON.stringify(result)
    return text === undefined ? String(result) : text.slice(0, 200)
  } catch {
    return typeof result
  }
}
