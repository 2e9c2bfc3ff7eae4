import { v4 as uuidv4 } from 'uuid'
import { FINAL_STATUSES, type Job, type JobStatus } from '../contract.js'
import type { Clock } from '../clock.js'
import { ConflictError, IllegalTransitionError, JobNotFoundError, LeaseLostError, NotPausableError, NotRetryableError, ValidationError } from '../errors.js'
import { inPlugin } from '../hooks/pluginScope.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { Logger } from '../logger.js'
import type { JobStatePatch, JobStore, MetaPatch, NewJob } from '../store/jobs/JobStore.js'
import { ownerScope } from '../store/jobs/jobSql.js'
import { sanitizeSvg } from '../security/sanitizeSvg.js'
import { JobHandle } from './JobHandle.js'
import { JobQueries } from './JobQueries.js'
import { assertJsonValue, parseOrThrow, pluginJobSchema, type CreateJobInput, type ParsedJobInput } from './jobInput.js'
import { encodeJson, jobRecordFromStored, META, recordAfter, toPublicJob, type JobRecord } from './jobRecord.js'
import { nextStatus, type JobAction } from './jobTransitions.js'
import { MAX_REORDER_JOBS, planReorder, ReorderRefusedError, reorderRefusal } from './reorderJobs.js'

const CLEANUP_BATCH = 1000
const MAX_ERROR_LENGTH = 4000
const HOUR_MS = 3600_000
const DAY_MS = 24 * HOUR_MS
/** Attempts of a job enqueued before its processor registered (the seed's default). */
const DEFAULT_QUEUED_MAX_ATTEMPTS = 3
/** How often delayed jobs are looked for when none is known to be due (other processes' too). */
const PROMOTE_INTERVAL_MS = 1000
const MAINTENANCE_INTERVAL_MS = 1000

/** What the runtime tells the registry about a type that has a processor. */
export { DEFAULT_LIST_LIMIT, MAX_COUNTED_TOTAL, MAX_LIST_LIMIT, NOTIFY_COMPLETED_MS, NOTIFY_FAILED_MS, NOTIFY_UNTIL_DISMISSED } from './JobQueries.js'

export interface QueueDefaults {
  maxAttempts: number
}

export interface RegisterJobsOptions {
  store: JobStore
  hooks: HookRegistry
  clock: Clock
  logger: Logger
  /** Defaults of the processor for `type`, or undefined when no processor is registered. */
  queueDefaults?: (type: string) => QueueDefaults | undefined
  /** Lease of a running tracked job, renewed every third of it by the process holding its handle. */
  leaseMs?: number
}

/** Called (in the plugin's scope) when a tracked job is paused: the plugin must stop driving it. */
export type PauseCallback = (job: Job) => unknown

/** What only a tracked job's plugin gives: how to pause it. */
export interface TrackedJobOptions {
  onPause?: PauseCallback
}

/** Meta of a tracked job whose plugin passed `onPause` (so every process knows it is pausable). */
export const PAUSABLE_META = 'on_pause'
/** Longest delay before a retry (a larger `retryDelay` is clamped): runAt stays a real date. */
export const MAX_RETRY_DELAY_MS = 7 * 24 * 3600_000

interface TrackedEntry {
  controller: AbortController
  timer?: NodeJS.Timeout
  /** The token of the running attempt this process drives (renewed with its lease). */
  token?: string
  postId?: number
  onPause?: PauseCallback
  /** The plugin that created it (faults of onPause are reported with its name). */
  owner?: string
}

export interface SettleOptions {
  /** The attempt token the caller holds; a mismatch means its lease was lost (LeaseLostError). */
  attemptToken?: string
  /** The record the caller holds (an attempt's): with a token, the write needs no read first. */
  current?: JobRecord
  /** The lease must have run out before this time (ms): recovery of an expired attempt. */
  lockedBefore?: number
}

export interface ClaimOptions {
  /** Types this worker may take now, with how many of each (per-type concurrency). */
  slots: Map<string, number>
  /** At most this many in all (global concurrency). */
  limit: number
  leaseMs: number
}

type Change = { set?: JobStatePatch; meta?: MetaPatch }
type ChangeBuilder = (current: JobRecord, next: JobStatus, now: number) => Change

/**
 * Jobs as posts: creates, queries and changes jobs through the job store. Every status change
 * goes through `transition`, which consults the transition table and writes only while the job
 * still has the status (and attempt token) it was decided on, so concurrent writers cannot both
 * win. The queue's moves (claim, completions, leases) are single statements of the store.
 */
export class RegisterJobs extends JobQueries {
  private readonly logger: Logger
  private queueDefaults: (type: string) => QueueDefaults | undefined
  /** Per-job chains so that writes for one job apply in call order. */
  private readonly chains = new Map<string, Promise<unknown>>()
  /** Timeouts, abort controllers and attempt tokens of tracked jobs driven by this process. */
  private readonly tracked = new Map<string, TrackedEntry>()
  private readonly leaseMs: number
  private leaseTimer: NodeJS.Timeout | undefined
  /** The earliest run time of a delayed job this process knows of (null: none known). */
  private knownNextDueAt: number | null = null
  private lastPromoteAt = -Infinity
  private maintenanceTimer: NodeJS.Timeout | undefined

  constructor(options: RegisterJobsOptions) {
    super(options)
    this.logger = options.logger
    this.queueDefaults = options.queueDefaults ?? (() => undefined)
    this.leaseMs = options.leaseMs ?? 30_000
    // The store's housekeeping in the background, a bounded step a second: PostgreSQL folds counter
    // deltas into their totals (one instance at a time); SQLite moves the search index's pending
    // rows into FTS5 and merges a few of its segments.
    this.maintenanceTimer = setInterval(() => {
      this.store.maintain().catch((error) => this.logger.warn({ err: error }, 'Could not run the job store maintenance'))
    }, MAINTENANCE_INTERVAL_MS)
    this.maintenanceTimer.unref()
  }

  setQueueDefaults(lookup: (type: string) => QueueDefaults | undefined): void {
    this.queueDefaults = lookup
  }

  /** When the next delayed job this process knows of becomes due (ms), for the runtime's timer. */
  get nextDueAt(): number | null {
    return this.knownNextDueAt
  }

  // ------------------------------------------------------------------------------------------
  // Creating

  /** Creates a job (one transaction) and returns its handle. */
  async createJob(input: CreateJobInput & TrackedJobOptions): Promise<JobHandle> {
    const { onPause, ...fields } = (input ?? {}) as CreateJobInput & TrackedJobOptions
    if (onPause !== undefined && typeof onPause !== 'function') throw new ValidationError('onPause must be a function.')
    const [record] = await this.insertJobs([fields], false, onPause ? { [PAUSABLE_META]: '1' } : undefined)
    const handle = this.handle(record!.jobId)
    const entry = this.tracked.get(record!.jobId)!
    entry.onPause = onPause
    entry.owner = record!.source ?? undefined
    return handle
  }

  /**
   * Creates many jobs in one transaction; returns their records in input order. A job is queued
   * for a processor when its type has one, or always with `queue: true` (enqueueJob).
   */
  async createJobs(inputs: CreateJobInput[], options: { queue?: boolean } = {}): Promise<JobRecord[]> {
    return this.insertJobs(inputs, options.queue ?? false)
  }

  private async insertJobs(inputs: CreateJobInput[], forceQueue = false, extraMeta?: Record<string, string>): Promise<JobRecord[]> {
    const now = this.clock.now()
    const jobs = inputs.map((input) => this.newJob(parseOrThrow(pluginJobSchema, input), now, forceQueue))
    if (extraMeta) for (const job of jobs) Object.assign(job.meta, extraMeta)
    const ids = await this.store.insert(jobs)
    const records = jobs.map((job, index) => jobRecordFromStored({ ...job, state: { ...job.state, postId: ids[index]! } }))
    for (const record of records) {
      if (record.stored.state.delayed) this.noteDelayed(record.stored.state.runAt)
      this.hooks.safeEmit('job:created', { job: toPublicJob(record) })
    }
    return records
  }

  private newJob(input: ParsedJobInput, now: number, forceQueue: boolean): NewJob {
    const runAt = input.runAt ? Date.parse(input.runAt) : now + (input.delay ?? 0)
    const defaults = this.queueDefaults(input.type) ?? (forceQueue ? { maxAttempts: DEFAULT_QUEUED_MAX_ATTEMPTS } : undefined)
    const meta: Record<string, string> = {}
    if (input.description) meta[META.description] = input.description
    const icon = input.iconSvg ? sanitizeSvg(input.iconSvg) : null
    if (icon) meta[META.iconSvg] = icon
    if (input.metadata && Object.keys(input.metadata).length) meta[META.metadata] = encodeJson(input.metadata)
    if (input.data !== undefined) meta[META.data] = encodeJson(input.data)
    const createdBy = input.createdBy ?? null
    const source = input.source ?? null
    return {
      jobId: uuidv4(),
      name: input.name,
      meta,
      state: {
        type: input.type,
        status: 'pending',
        queued: defaults !== undefined,
        delayed: runAt > now,
        priority: input.priority ?? 0,
        runAt,
        attempts: 0,
        maxAttempts: input.maxAttempts ?? defaults?.maxAttempts ?? 1,
        attemptToken: null,
        lockedUntil: null,
        progress: 0,
        timeoutMs: input.timeout ?? null,
        showNotification: input.showNotification !== false,
        createdBy,
        owner: ownerScope(createdBy, source),
        source,
        parentJobId: input.parentJobId ?? null,
        pausedFrom: null,
        createdAt: now,
        updatedAt: now,
        startedAt: null,
        completedAt: null,
      },
    }
  }

  handle(jobId: string): JobHandle {
    let entry = this.tracked.get(jobId)
    if (!entry) this.tracked.set(jobId, (entry = { controller: new AbortController() }))
    return new JobHandle(this, jobId, entry.controller.signal, () => this.tracked.get(jobId)?.token)
  }

  // ------------------------------------------------------------------------------------------
  // Changing

  /**
   * Starts a tracked job: a new attempt token and a lease, renewed by this process while it
   * holds the handle (`lease: false` for jobs the workflow engine of every process drives, such
   * as a chain's parent: no single process holds them).
   */
  async start(jobId: string, options: SettleOptions & { lease?: boolean } = {}): Promise<JobRecord> {
    const leased = options.lease !== false
    const record = await this.transition(jobId, 'start', options, (current, _next, now) => ({
      set: {
        attempts: current.attempts + 1,
        startedAt: current.stored.state.startedAt ?? now,
        ...(leased ? { attemptToken: uuidv4(), lockedUntil: now + this.leaseMs } : { attemptToken: null, lockedUntil: null }),
      },
    }))
    if (leased && record.attemptToken) {
      let entry = this.tracked.get(jobId)
      if (!entry) this.tracked.set(jobId, (entry = { controller: new AbortController() }))
      entry.token = record.attemptToken
      entry.postId = record.id
      this.renewTrackedLeases()
    }
    this.armTimeout(record)
    this.hooks.safeEmit('job:started', { job: toPublicJob(record) })
    return record
  }

  /** Integer 0..100 (rounded and clamped); metadata is shallow-merged into the job's metadata. */
  async updateProgress(
    jobId: string,
    progress: number,
    metadata?: Record<string, unknown>,
    options: SettleOptions = {},
  ): Promise<JobRecord> {
    if (typeof progress !== 'number' || Number.isNaN(progress)) {
      throw new ValidationError('progress must be a number from 0 to 100.')
    }
    const value = Math.min(100, Math.max(0, Math.round(progress)))
    if (metadata !== undefined) {
      if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) {
        throw new ValidationError('metadata must be an object.')
      }
      assertJsonValue(metadata, 'metadata', 64 * 1024)
    }
    const record = await this.transition(jobId, 'progress', options, (current) => ({
      set: { progress: value },
      meta: metadata ? { [META.metadata]: encodeJson(assertJsonValue({ ...current.metadata, ...metadata }, 'metadata', 64 * 1024)) } : undefined,
    }))
    this.hooks.safeEmit('job:progress', { job: toPublicJob(record) })
    return record
  }

  /** Completes the job; any result, falsy ones included, is stored as JSON. */
  async complete(jobId: string, result?: unknown, options: SettleOptions & { withErrors?: boolean } = {}): Promise<JobRecord> {
    assertJsonValue(result ?? null, 'result')
    const record = await this.transition(jobId, options.withErrors ? 'completeWithErrors' : 'complete', options, (_c, _n, now) => ({
      set: { progress: 100, completedAt: now, ...released() },
      meta: { [META.result]: encodeJson(result), [META.errorMessage]: null },
    }))
    this.settleTracked(jobId)
    this.hooks.safeEmit('job:completed', { job: toPublicJob(record) })
    return record
  }

  /**
   * Completes a runtime attempt, fenced by `running` and its attempt token, without reading the
   * job first. The store group-commits the completions of one event-loop turn.
   */
  async completeAttempt(attempt: JobRecord, result?: unknown, options: { withErrors?: boolean } = {}): Promise<JobRecord> {
    const token = attempt.attemptToken
    if (!token) return this.complete(attempt.jobId, result, options)
    assertJsonValue(result ?? null, 'result')
    return this.serialize(attempt.jobId, async () => {
      const now = this.clock.now()
      // No row for a null result (it reads back as null); no delete when there is no error.
      const encoded = result == null ? null : encodeJson(result)
      const clearError = attempt.stored.meta[META.errorMessage] !== undefined
      const [state] = await this.store.complete([
        { postId: attempt.id, token, status: options.withErrors ? 'completed_with_errors' : 'completed', result: encoded, clearError, now },
      ])
      if (!state) throw await this.whyRefused(attempt.jobId, token, options.withErrors ? 'completeWithErrors' : 'complete')
      const record = recordAfter(attempt, state, { [META.result]: encoded, [META.errorMessage]: null })
      this.settleTracked(attempt.jobId)
      this.hooks.safeEmit('job:completed', { job: toPublicJob(record) })
      return record
    })
  }

  async fail(jobId: string, message: string, options: SettleOptions = {}): Promise<JobRecord> {
    const error = errorText(message)
    const record = await this.transition(jobId, 'fail', options, (_c, _n, now) => ({
      set: { completedAt: now, ...released() },
      meta: { [META.errorMessage]: error },
    }))
    this.settleTracked(jobId)
    this.hooks.safeEmit('job:failed', { job: toPublicJob(record), error })
    return record
  }

  async cancel(jobId: string, options: SettleOptions = {}): Promise<JobRecord> {
    const record = await this.transition(jobId, 'cancel', options, (_c, _n, now) => ({
      set: { completedAt: now, ...released() },
    }))
    this.settleTracked(jobId, 'cancelled')
    this.hooks.safeEmit('job:cancelled', { job: toPublicJob(record) })
    return record
  }

  /**
   * Pauses a job. A running attempt is aborted (the runtime holding it sees `job:paused`, or its
   * next renewal fails): the token and lease are retired in the same write, so nothing the
   * attempt writes afterwards lands, and the attempt is not counted. A tracked job is pausable
   * only when its plugin passed `onPause` (NOT_PAUSABLE otherwise), which is then called.
   */
  async pause(jobId: string): Promise<JobRecord> {
    const record = await this.transition(jobId, 'pause', {}, (current) => {
      if (!current.queued && current.stored.meta[PAUSABLE_META] !== '1') throw new NotPausableError(jobId)
      return {
        set: {
          pausedFrom: current.status,
          ...(current.status === 'running' ? { attempts: Math.max(0, current.attempts - 1) } : {}),
          attemptToken: null,
          lockedUntil: null,
        },
      }
    })
    this.pauseTracked(jobId, record)
    this.hooks.safeEmit('job:paused', { job: toPublicJob(record) })
    return record
  }

  /** A resumed job waits in `pending` (a tracked one until its plugin starts it again). */
  async resume(jobId: string): Promise<JobRecord> {
    const record = await this.transition(jobId, 'resume', {}, (current, _next, now) => ({
      set: { pausedFrom: null, delayed: current.stored.state.runAt > now },
    }))
    this.hooks.safeEmit('job:resumed', { job: toPublicJob(record) })
    return record
  }

  /**
   * An attempt failed with attempts left: back to `pending` at `runAt = now + delayMs` (a paused
   * job stays paused). Releases the lease and the attempt token.
   */
  async requeue(
    jobId: string,
    error: string,
    delayMs: number,
    options: SettleOptions & { countAttempt?: boolean } = {},
  ): Promise<JobRecord> {
    const message = errorText(error)
    const delay = Number.isFinite(delayMs) ? Math.min(MAX_RETRY_DELAY_MS, Math.max(0, delayMs)) : 0
    const record = await this.transition(jobId, 'requeue', options, (current, _next, now) => {
      const runAt = now + delay
      return {
        set: {
          ...(options.countAttempt === false ? { attempts: Math.max(0, current.attempts - 1) } : {}),
          runAt,
          delayed: runAt > now,
          pausedFrom: null,
          lockedUntil: null,
          attemptToken: null,
        },
        meta: { [META.errorMessage]: message },
      }
    })
    if (record.stored.state.delayed) this.noteDelayed(record.stored.state.runAt)
    this.hooks.safeEmit('job:retry', { job: toPublicJob(record), error: message, delayMs: delay })
    return record
  }

  /** Runs a failed or cancelled job again, with a fresh set of attempts. */
  async retry(jobId: string): Promise<JobRecord> {
    const record = await this.transition(jobId, 'retry', {}, (current, _next, now) => {
      // A tracked job that no processor runs would wait in `pending` forever.
      const runnable = this.queueDefaults(current.type) !== undefined
      if (!current.queued && !runnable) throw new NotRetryableError(jobId, current.type)
      return {
        set: { attempts: 0, progress: 0, completedAt: null, startedAt: null, runAt: now, delayed: false, attemptToken: null, lockedUntil: null, queued: true },
        meta: { [META.errorMessage]: null, [META.result]: null, [META.checkpoint]: null },
      }
    })
    this.hooks.safeEmit('job:updated', { job: toPublicJob(record) })
    return record
  }

  /** Makes a pending delayed job due now. */
  async runNow(jobId: string): Promise<JobRecord> {
    return this.serialize(jobId, async () => {
      const current = await this.requireRecord(jobId)
      if (current.status !== 'pending') throw new IllegalTransitionError('run now', current.status)
      const now = this.clock.now()
      const state = await this.store.change({ postId: current.id, from: ['pending'], set: { runAt: Math.min(now, current.stored.state.runAt), delayed: false } }, now)
      if (!state) throw new ConflictError('The job changed while it was being made due; try again.')
      const record = recordAfter(current, state)
      this.hooks.safeEmit('job:updated', { job: toPublicJob(record) })
      return record
    })
  }

  /** Changes the priority of a waiting job (pending or paused). */
  async setPriority(jobId: string, priority: number): Promise<JobRecord> {
    return this.serialize(jobId, async () => {
      const current = await this.requireRecord(jobId)
      if (current.status !== 'pending' && current.status !== 'paused') {
        throw new IllegalTransitionError('change the priority of', current.status)
      }
      const state = await this.store.change({ postId: current.id, from: [current.status], set: { priority } }, this.clock.now())
      if (!state) throw new ConflictError('The job changed while its priority was being set; try again.')
      const record = recordAfter(current, state)
      this.hooks.safeEmit('job:updated', { job: toPublicJob(record) })
      return record
    })
  }

  /**
   * Reorders pending jobs (POST /api/v1/jobs/reorder; how: reorderJobs.ts): afterwards they are
   * claimed in the listed order relative to each other. All or nothing, in one transaction; a job
   * the caller may not see (`visible`) is not found. Each moved job is emitted as `job:updated`.
   */
  async reorder(jobIds: readonly string[], options: { visible?: (record: JobRecord) => boolean } = {}): Promise<JobRecord[]> {
    if (jobIds.length === 0 || jobIds.length > MAX_REORDER_JOBS) {
      throw new ValidationError(`jobIds must list 1 to ${MAX_REORDER_JOBS} jobs.`)
    }
    if (new Set(jobIds).size !== jobIds.length) throw new ValidationError('jobIds lists a job more than once.')
    // One read for all of them (a read per job cost ~0.2 ms each on SQLite, ~0.9 ms on PostgreSQL).
    const found = new Map((await this.store.getByJobIds(jobIds)).map((stored) => [stored.jobId, jobRecordFromStored(stored)]))
    const records = jobIds.map((jobId) => {
      const record = found.get(jobId)
      if (!record || (options.visible && !options.visible(record))) throw new JobNotFoundError(jobId)
      return record
    })
    const now = this.clock.now()
    for (const record of records) {
      const reason = reorderRefusal(record.stored.state, now)
      if (reason) throw new ReorderRefusedError(record.jobId, reason)
    }
    const plan = planReorder(records.map((record) => record.stored.state))
    const outcome = await this.store.reorder({ postIds: records.map((record) => record.id), priority: plan.priority, runAts: plan.runAts, now })
    if (!outcome.ok) {
      // It changed between the read and the write (claimed, cancelled...): say what it is now.
      const record = records.find((candidate) => candidate.id === outcome.postId)!
      const current = await this.getJobRecord(record.jobId)
      const reason = current ? reorderRefusal(current.stored.state, this.clock.now()) : 'it was deleted'
      throw new ReorderRefusedError(record.jobId, reason ?? 'it changed meanwhile; try again')
    }
    const moved = records.map((record, i) => recordAfter(record, outcome.states[i]!))
    for (const record of moved) this.hooks.safeEmit('job:updated', { job: toPublicJob(record) })
    return moved
  }

  /**
   * Writes plugin meta of a job (a workflow's cursor, say) only while the job has one of
   * `statuses` and each `expectMeta` key holds its value; returns the new record or null.
   */
  async updateJobMeta(
    jobId: string,
    meta: MetaPatch,
    options: { statuses: readonly JobStatus[]; expectMeta?: Record<string, string | null> },
  ): Promise<JobRecord | null> {
    return this.serialize(jobId, async () => {
      const current = await this.getJobRecord(jobId)
      if (!current || !options.statuses.includes(current.status)) return null
      // Fenced in the statement, so that of two processes only one moves a cursor from a value.
      const state = await this.store.change(
        { postId: current.id, from: options.statuses, set: {}, meta, metaEquals: options.expectMeta },
        this.clock.now(),
      )
      return state ? recordAfter(current, state, meta) : null
    })
  }

  /**
   * `updateJobMeta` and the creation of `inputs` (queued jobs) in one transaction: the jobs are
   * created only if the fenced meta write held, and the write stands only if they were created.
   * A chain moves its cursor and creates its next step this way, so a crash leaves neither or both.
   */
  async updateJobMetaAndCreate(
    jobId: string,
    meta: MetaPatch,
    options: { statuses: readonly JobStatus[]; expectMeta?: Record<string, string | null> },
    inputs: CreateJobInput[],
  ): Promise<{ record: JobRecord; created: JobRecord[] } | null> {
    return this.serialize(jobId, async () => {
      const current = await this.getJobRecord(jobId)
      if (!current || !options.statuses.includes(current.status)) return null
      const now = this.clock.now()
      const jobs = inputs.map((input) => this.newJob(parseOrThrow(pluginJobSchema, input), now, true))
      const done = await this.store.changeAndInsert(
        { postId: current.id, from: options.statuses, set: {}, meta, metaEquals: options.expectMeta },
        jobs,
        now,
      )
      if (!done) return null
      const created = jobs.map((job, index) => jobRecordFromStored({ ...job, state: { ...job.state, postId: done.postIds[index]! } }))
      for (const record of created) {
        if (record.stored.state.delayed) this.noteDelayed(record.stored.state.runAt)
        this.hooks.safeEmit('job:created', { job: toPublicJob(record) })
      }
      return { record: recordAfter(current, done.state, meta), created }
    })
  }

  /** Deletes a finished job; 409 when it is pending, running or paused. */
  async deleteJob(jobId: string): Promise<void> {
    const current = await this.requireRecord(jobId)
    const deleted = await this.store.deleteIf(current.id, FINAL_STATUSES)
    if (!deleted) throw new IllegalTransitionError('delete', current.status)
    this.tracked.delete(jobId)
    this.hooks.safeEmit('job:deleted', { jobId, createdBy: current.createdBy })
  }

  /** Deletes finished jobs whose completedAt is older than `daysOld` days, in batches. */
  async cleanupOldJobs(daysOld: number): Promise<number> {
    if (!Number.isInteger(daysOld) || daysOld < 1 || daysOld > 3650) {
      throw new ValidationError('daysOld must be an integer from 1 to 3650.')
    }
    const cutoff = this.clock.now() - daysOld * DAY_MS
    let deleted = 0
    for (;;) {
      // Oldest first along the completion index: each batch costs O(log n + batch).
      const batch = await this.store.deleteFinishedBefore(cutoff, CLEANUP_BATCH)
      deleted += batch
      if (batch < CLEANUP_BATCH) return deleted
    }
  }

  // ------------------------------------------------------------------------------------------
  // The queue (used by the runtime)

  /**
   * Claims due queued jobs of the types with free slots, highest priority first, then oldest
   * runAt: each becomes `running` with a new attempt token and a lease until now + leaseMs, in
   * one statement (PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers never share a job).
   */
  async claimDueJobs(options: ClaimOptions): Promise<JobRecord[]> {
    const slots = [...options.slots].filter(([, n]) => n > 0)
    if (slots.length === 0 || options.limit <= 0) return []
    const now = this.clock.now()
    await this.promoteDue(now)
    const claimed = (await this.store.claim({ slots, limit: options.limit, now, leaseMs: options.leaseMs })).map(jobRecordFromStored)
    for (const record of claimed) this.hooks.safeEmit('job:started', { job: toPublicJob(record) })
    return claimed
  }

  /** Makes delayed jobs that are due claimable: when one is known to be due, else once a second. */
  private async promoteDue(now: number): Promise<void> {
    const known = this.knownNextDueAt !== null && now >= this.knownNextDueAt
    if (!known && now - this.lastPromoteAt < PROMOTE_INTERVAL_MS) return
    this.lastPromoteAt = now
    const { nextDueAt } = await this.store.promoteDue(now)
    this.knownNextDueAt = nextDueAt
  }

  private noteDelayed(runAt: number) {
    if (this.knownNextDueAt === null || runAt < this.knownNextDueAt) this.knownNextDueAt = runAt
  }

  /** Extends the leases of attempts this worker holds; returns the job ids still ours. */
  async renewLeases(attemptTokens: string[], leaseMs: number): Promise<Set<number>> {
    const now = this.clock.now()
    return new Set(await this.store.renewLeases(attemptTokens, now + leaseMs, now))
  }

  /** Jobs whose lease ran out (their worker died or hung), oldest first. */
  async findExpiredLeases(limit: number): Promise<JobRecord[]> {
    return (await this.store.expiredLeases(this.clock.now(), limit)).map(jobRecordFromStored)
  }

  /**
   * Gives an expired attempt back: to `pending` (attempt counted) or `failed` when no attempts are
   * left. Only while the lease is still the expired one, so a worker that renewed in time wins.
   */
  async recoverExpiredLease(record: JobRecord, retryDelayMs: number): Promise<JobRecord | null> {
    if (!record.attemptToken || !record.lockedUntil) return null
    const options: SettleOptions = { attemptToken: record.attemptToken, lockedBefore: this.clock.now() }
    const message = record.queued
      ? `The worker running attempt ${record.attempts} stopped responding (lease expired)${record.attempts >= record.maxAttempts ? `; no attempts left (${record.maxAttempts})` : ''}.`
      : `The process driving this job stopped (its lease expired at ${record.lockedUntil}); a job driven by a plugin cannot be taken over by another process.`
    try {
      // A tracked job is driven by one process's handle: nobody else can carry it on.
      return !record.queued || record.attempts >= record.maxAttempts
        ? await this.fail(record.jobId, message, options)
        : await this.requeue(record.jobId, message, retryDelayMs, options)
    } catch (error) {
      if (error instanceof LeaseLostError || error instanceof IllegalTransitionError || error instanceof ConflictError) return null
      throw error
    }
  }

  /**
   * Saves what a processor wants back on its next attempt (`job.checkpoint`), fenced by the
   * attempt token: refused (LeaseLostError) once the attempt was paused, cancelled or lost.
   */
  async checkpoint(attempt: JobRecord, value: unknown): Promise<void> {
    const token = attempt.attemptToken
    if (!token) throw new LeaseLostError(attempt.jobId)
    const encoded = encodeJson(assertJsonValue(value ?? null, 'checkpoint', 256 * 1024))
    const state = await this.serialize(attempt.jobId, () =>
      this.store.change({ postId: attempt.id, from: ['running'], token, set: {}, meta: { [META.checkpoint]: encoded } }, this.clock.now()),
    )
    if (!state) throw new LeaseLostError(attempt.jobId)
  }

  /** The token of the tracked job's attempt this process drives (its handle writes with it). */
  trackedToken(jobId: string): string | undefined {
    return this.tracked.get(jobId)?.token
  }

  /**
   * Applies a pause or cancel made elsewhere (another process, seen by its renewal failing or a
   * cluster event) to a tracked job this process drives.
   */
  trackedChanged(jobId: string, record: JobRecord | null): void {
    const entry = this.tracked.get(jobId)
    if (!entry?.token) return
    if (record && record.attemptToken === entry.token && record.status === 'running') return
    entry.token = undefined
    clearTimeout(entry.timer)
    if (record?.status === 'paused') return this.pauseTracked(jobId, record)
    const reason = record?.status === 'cancelled' ? 'cancelled' : 'lease_lost'
    if (!entry.controller.signal.aborted) entry.controller.abort(reason)
    this.tracked.delete(jobId)
  }

  /** A paused tracked job: its token is retired; its plugin's onPause is told (in its scope). */
  private pauseTracked(jobId: string, record: JobRecord) {
    const entry = this.tracked.get(jobId)
    if (!entry) return
    entry.token = undefined
    clearTimeout(entry.timer)
    const onPause = entry.onPause
    if (!onPause) return
    const owner = entry.owner ?? record.source ?? 'plugin'
    const job = toPublicJob(record)
    void inPlugin(owner, () => Promise.resolve().then(() => onPause(job))).catch((thrown: unknown) =>
      this.logger.error({ err: thrown, plugin: owner, jobId }, `Plugin "${owner}" failed in onPause`),
    )
  }

  /** Renews the leases of the tracked jobs this process drives, every third of the lease. */
  private renewTrackedLeases() {
    if (this.leaseTimer) return
    this.leaseTimer = setInterval(() => {
      void this.renewTrackedOnce().catch((error) => this.logger.warn({ err: error }, 'Could not renew the leases of tracked jobs'))
    }, Math.max(100, Math.round(this.leaseMs / 3)))
    this.leaseTimer.unref()
  }

  /** One renewal round; a job whose lease is no longer ours was paused, cancelled or recovered. */
  async renewTrackedOnce(): Promise<void> {
    const held = [...this.tracked].filter(([, entry]) => entry.token)
    if (held.length === 0) {
      clearInterval(this.leaseTimer)
      this.leaseTimer = undefined
      return
    }
    const now = this.clock.now()
    const ours = new Set(await this.store.renewLeases(held.map(([, entry]) => entry.token!), now + this.leaseMs, now))
    for (const [jobId, entry] of held) {
      if (entry.postId !== undefined && ours.has(entry.postId)) continue
      this.trackedChanged(jobId, await this.getJobRecord(jobId))
    }
  }

  /** Housekeeping of the store (see the constructor's timer); tests call it to run it now. */
  maintain(): Promise<void> {
    return this.store.maintain()
  }

  // ------------------------------------------------------------------------------------------
  // The state machine

  /**
   * Decides the next status from the transition table and writes `build(...)` only if the job
   * still has the status (and attempt token, when given) it was decided on. A lost race re-reads
   * and decides again, so the loser sees the winner's status and gets ILLEGAL_TRANSITION. With
   * the caller's current record and token (a runtime attempt), nothing is read first.
   */
  async transition(jobId: string, action: JobAction, options: SettleOptions, build: ChangeBuilder): Promise<JobRecord> {
    return this.serialize(jobId, async () => {
      let current = options.attemptToken !== undefined && options.current ? options.current : undefined
      for (let attempt = 0; attempt < 5; attempt++) {
        current ??= await this.requireRecord(jobId)
        if (options.attemptToken !== undefined && current.attemptToken !== options.attemptToken) {
          // Illegal from where the job is now (say, already final): say so; else another attempt
          // (or a pause, cancel or retry) took the job from this one.
          nextStatus(action, current.status)
          throw new LeaseLostError(jobId)
        }
        const next = nextStatus(action, current.status, current.pausedFrom)
        const now = this.clock.now()
        const change = build(current, next, now)
        const state = await this.store.change(
          {
            postId: current.id,
            from: [current.status],
            token: options.attemptToken,
            lockedBefore: options.lockedBefore,
            set: { status: next, ...change.set },
            meta: change.meta,
          },
          now,
        )
        if (state) return recordAfter(current, state, change.meta)
        if (options.lockedBefore !== undefined) throw new ConflictError(`Job ${jobId} renewed its lease.`)
        current = undefined
      }
      throw new ConflictError(`Job ${jobId} kept changing; try again.`)
    })
  }

  /** Why a fenced write without a read was refused: the error a read-first write would give. */
  private async whyRefused(jobId: string, token: string, action: JobAction): Promise<Error> {
    const current = await this.getJobRecord(jobId)
    if (!current) return new JobNotFoundError(jobId)
    if (current.attemptToken !== token) return new LeaseLostError(jobId)
    try {
      nextStatus(action, current.status, current.pausedFrom)
    } catch (error) {
      return error as Error
    }
    return new ConflictError(`Job ${jobId} changed meanwhile; try again.`)
  }

  private async requireRecord(jobId: string): Promise<JobRecord> {
    const record = await this.getJobRecord(jobId)
    if (!record) throw new JobNotFoundError(jobId)
    return record
  }

  private serialize<T>(jobId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(jobId) ?? Promise.resolve()
    const run = previous.then(work, work)
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    this.chains.set(jobId, settled)
    void settled.then(() => {
      if (this.chains.get(jobId) === settled) this.chains.delete(jobId)
    })
    return run
  }

  /** Tracked jobs (not run by a processor) with a timeout fail when it passes. */
  private armTimeout(record: JobRecord) {
    if (record.queued || !record.timeout) return
    const entry = this.tracked.get(record.jobId)
    if (!entry) return
    clearTimeout(entry.timer)
    entry.timer = setTimeout(() => {
      // Abort first so the plugin stops at once; the failed status is what makes it final.
      entry.controller.abort('timeout')
      this.fail(record.jobId, `Timed out after ${record.timeout} ms.`).catch((error) => {
        if (!(error instanceof IllegalTransitionError)) this.logger.error({ err: error }, 'Could not time out a job.')
      })
    }, record.timeout)
    entry.timer.unref()
  }

  /** Forgets a settled tracked job; a cancel also aborts the signal its plugin holds. */
  private settleTracked(jobId: string, abortReason?: string) {
    const entry = this.tracked.get(jobId)
    if (!entry) return
    clearTimeout(entry.timer)
    if (abortReason && !entry.controller.signal.aborted) entry.controller.abort(abortReason)
    this.tracked.delete(jobId)
  }

  /** Stops every tracked-job timer (graceful shutdown). */
  close(): void {
    clearInterval(this.maintenanceTimer)
    clearInterval(this.leaseTimer)
    this.leaseTimer = undefined
    for (const entry of this.tracked.values()) clearTimeout(entry.timer)
    this.tracked.clear()
  }
}

/** What releases a job's lease and attempt token. */
function released(): JobStatePatch {
  return { lockedUntil: null, attemptToken: null, pausedFrom: null }
}

function errorText(message: unknown): string {
  const text = typeof message === 'string' ? message : message instanceof Error ? message.message : String(message)
  return (text || 'Failed.').slice(0, MAX_ERROR_LENGTH)
}
