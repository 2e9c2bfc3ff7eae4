import { v4 as uuidv4 } from 'uuid'
import {
  FINAL_STATUSES,
  JOB_STATUSES,
  type Job,
  type JobList,
  type JobListFilters,
  type JobStats,
  type JobStatus,
} from '../contract.js'
import { isoNow, type Clock } from '../clock.js'
import { ConflictError, IllegalTransitionError, JobNotFoundError, LeaseLostError, ValidationError } from '../errors.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { Logger } from '../logger.js'
import type { MetaCondition, MetaWrite, NewPost, PostRecord, PostStore } from '../store/PostStore.js'
import { sanitizeSvg } from '../security/sanitizeSvg.js'
import { JobHandle } from './JobHandle.js'
import { assertJsonValue, parseOrThrow, pluginJobSchema, type CreateJobInput, type ParsedJobInput } from './jobInput.js'
import { encodeJson, JOB_POST_TYPE, jobRecordFromPost, META, queueOrder, toPublicJob, type JobRecord } from './jobRecord.js'
import { nextStatus, type JobAction } from './jobTransitions.js'

export const DEFAULT_LIST_LIMIT = 100
export const MAX_LIST_LIMIT = 500
const CLEANUP_BATCH = 1000
const MAX_ERROR_LENGTH = 4000
const DAY_MS = 24 * 3600 * 1000
/** Attempts of a job enqueued before its processor registered (the seed's default). */
const DEFAULT_QUEUED_MAX_ATTEMPTS = 3

/** What the runtime tells the registry about a type that has a processor. */
export interface QueueDefaults {
  maxAttempts: number
}

export interface RegisterJobsOptions {
  store: PostStore
  hooks: HookRegistry
  clock: Clock
  logger: Logger
  /** Defaults of the processor for `type`, or undefined when no processor is registered. */
  queueDefaults?: (type: string) => QueueDefaults | undefined
}

export interface SettleOptions {
  /** The attempt token the caller holds; a mismatch means its lease was lost (LeaseLostError). */
  attemptToken?: string
  /** Further conditions the write needs (e.g. that a lease really expired). */
  expect?: MetaCondition[]
}

export interface ClaimOptions {
  /** Types this worker may take now, with how many of each (per-type concurrency). */
  slots: Map<string, number>
  /** At most this many in all (global concurrency). */
  limit: number
  leaseMs: number
}

type MetaBuilder = (current: JobRecord, next: JobStatus, now: string) => MetaWrite

/**
 * Jobs as posts: creates, queries and changes jobs through the posts + meta store. Every status
 * change goes through `transition`, which consults the transition table and writes only while the
 * job still has the status it was read with, so concurrent writers cannot both win.
 */
export class RegisterJobs {
  private readonly store: PostStore
  private readonly hooks: HookRegistry
  private readonly clock: Clock
  private readonly logger: Logger
  private queueDefaults: (type: string) => QueueDefaults | undefined
  /** Per-job chains so that writes for one job apply in call order. */
  private readonly chains = new Map<string, Promise<unknown>>()
  /** Timeouts and abort controllers of tracked jobs started in this process. */
  private readonly tracked = new Map<string, { controller: AbortController; timer?: NodeJS.Timeout }>()
  /** Runtime completions waiting to be settled together (see completeAttempt). */
  private readonly pendingCompletes: PendingComplete[] = []
  private completing = false

  constructor(options: RegisterJobsOptions) {
    this.store = options.store
    this.hooks = options.hooks
    this.clock = options.clock
    this.logger = options.logger
    this.queueDefaults = options.queueDefaults ?? (() => undefined)
  }

  setQueueDefaults(lookup: (type: string) => QueueDefaults | undefined): void {
    this.queueDefaults = lookup
  }

  // ------------------------------------------------------------------------------------------
  // Creating

  /** Creates a job (one transaction) and returns its handle. */
  async createJob(input: CreateJobInput): Promise<JobHandle> {
    const [record] = await this.insertJobs([input])
    return this.handle(record!.jobId)
  }

  /**
   * Creates many jobs in one transaction; returns their records in input order. A job is queued
   * for a processor when its type has one, or always with `queue: true` (enqueueJob).
   */
  async createJobs(inputs: CreateJobInput[], options: { queue?: boolean } = {}): Promise<JobRecord[]> {
    return this.insertJobs(inputs, options.queue ?? false)
  }

  private async insertJobs(inputs: CreateJobInput[], forceQueue = false): Promise<JobRecord[]> {
    const now = this.clock.now()
    const posts = inputs.map((input) => this.newJobPost(parseOrThrow(pluginJobSchema, input), now, forceQueue))
    const ids = await this.store.createPosts(posts)
    // What was just written, as getPosts would read it back (one author at most, no null meta).
    const records = posts.map((post, index) =>
      jobRecordFromPost({
        id: ids[index]!,
        postType: post.postType,
        title: post.title,
        slug: post.slug,
        status: post.status ?? 'publish',
        createdAt: post.createdAt,
        updatedAt: post.createdAt,
        authorId: post.authorId ?? null,
        meta: post.meta,
      }),
    )
    for (const record of records) this.hooks.safeEmit('job:created', { job: toPublicJob(record) })
    return records
  }

  private newJobPost(input: ParsedJobInput, now: number, forceQueue: boolean): NewPost {
    const createdAt = new Date(now).toISOString()
    const runAt = input.runAt
      ? new Date(input.runAt).toISOString()
      : new Date(now + (input.delay ?? 0)).toISOString()
    const defaults = this.queueDefaults(input.type) ?? (forceQueue ? { maxAttempts: DEFAULT_QUEUED_MAX_ATTEMPTS } : undefined)
    const priority = input.priority ?? 0
    const jobId = uuidv4()
    const iconSvg = input.iconSvg ? sanitizeSvg(input.iconSvg) : null
    const meta: Record<string, string> = {
      [META.jobId]: jobId,
      [META.name]: input.name,
      [META.description]: input.description ?? '',
      [META.type]: input.type,
      [META.status]: 'pending',
      [META.progress]: '0',
      [META.metadata]: encodeJson(input.metadata ?? {}),
      [META.showNotification]: input.showNotification === false ? '0' : '1',
      [META.priority]: String(priority),
      [META.attempts]: '0',
      [META.maxAttempts]: String(input.maxAttempts ?? defaults?.maxAttempts ?? 1),
      [META.runAt]: runAt,
    }
    if (iconSvg) meta[META.iconSvg] = iconSvg
    if (input.source) meta[META.source] = input.source
    if (input.timeout != null) meta[META.timeout] = String(input.timeout)
    if (input.data !== undefined) meta[META.data] = encodeJson(input.data)
    if (input.parentJobId) meta[META.parentJobId] = input.parentJobId
    if (defaults) {
      meta[META.queued] = '1'
      meta[META.queueOrder] = queueOrder(priority, runAt)
    }
    return { postType: JOB_POST_TYPE, title: input.name, slug: jobId, createdAt, meta, authorId: input.createdBy ?? null }
  }

  handle(jobId: string): JobHandle {
    let entry = this.tracked.get(jobId)
    if (!entry) this.tracked.set(jobId, (entry = { controller: new AbortController() }))
    return new JobHandle(this, jobId, entry.controller.signal)
  }

  // ------------------------------------------------------------------------------------------
  // Reading

  async getJobRecord(jobId: string): Promise<JobRecord | null> {
    if (typeof jobId !== 'string' || jobId.length > 64) return null
    const post = await this.store.getPostBySlug(JOB_POST_TYPE, jobId)
    return post ? jobRecordFromPost(post) : null
  }

  async getJob(jobId: string): Promise<Job | null> {
    const record = await this.getJobRecord(jobId)
    return record ? toPublicJob(record) : null
  }

  async getJobRecords(postIds: number[]): Promise<JobRecord[]> {
    return (await this.store.getPosts(postIds)).map(jobRecordFromPost)
  }

  /** Filters in SQL before paging; `total` counts every match. Newest first. */
  async getJobs(filters: JobListFilters = {}): Promise<JobList> {
    const limit = filters.limit ?? DEFAULT_LIST_LIMIT
    const offset = filters.offset ?? 0
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new ValidationError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}.`)
    }
    if (!Number.isInteger(offset) || offset < 0) throw new ValidationError('offset must be a non-negative integer.')
    const where: MetaCondition[] = []
    const statuses = filters.status === undefined ? [] : ([] as JobStatus[]).concat(filters.status)
    for (const status of statuses) {
      if (!JOB_STATUSES.includes(status)) throw new ValidationError(`Unknown status ${JSON.stringify(status)}.`)
    }
    if (statuses.length) where.push({ key: META.status, in: statuses })
    if (filters.type) where.push({ key: META.type, eq: filters.type })
    if (filters.source) where.push({ key: META.source, eq: filters.source })
    if (filters.parentJobId) where.push({ key: META.parentJobId, eq: filters.parentJobId })
    const { ids, total } = await this.store.queryPostIds({
      postType: JOB_POST_TYPE,
      where,
      titleContains: filters.search || undefined,
      authorId: filters.createdBy,
      limit,
      offset,
    })
    const jobs = (await this.getJobRecords(ids)).map(toPublicJob)
    return { jobs, total, limit, offset }
  }

  async stats(filters: { createdBy?: number } = {}): Promise<JobStats> {
    const byStatusRaw = await this.store.countByMeta(JOB_POST_TYPE, META.status, [], filters.createdBy)
    const byType = await this.store.countByMeta(JOB_POST_TYPE, META.type, [], filters.createdBy)
    const byStatus = Object.fromEntries(JOB_STATUSES.map((status) => [status, byStatusRaw[status] ?? 0])) as Record<JobStatus, number>
    const total = Object.values(byStatus).reduce((sum, n) => sum + n, 0)
    // Filtered so that other parts of the host can add to it (core/cluster adds `instances`).
    return this.hooks.applyFilters<JobStats>('jobs_stats', { byStatus, byType, total }, filters)
  }

  // ------------------------------------------------------------------------------------------
  // Changing

  async start(jobId: string, options: SettleOptions = {}): Promise<JobRecord> {
    const record = await this.transition(jobId, 'start', options, (current, _next, now) => ({
      [META.startedAt]: current.startedAt ?? now,
      [META.attempts]: String(current.attempts + 1),
      [META.queueOrder]: null,
    }))
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
      [META.progress]: String(value),
      ...(metadata ? { [META.metadata]: encodeJson(assertJsonValue({ ...current.metadata, ...metadata }, 'metadata', 64 * 1024)) } : {}),
    }))
    this.hooks.safeEmit('job:progress', { job: toPublicJob(record) })
    return record
  }

  /** Completes the job; any result, falsy ones included, is stored as JSON. */
  async complete(jobId: string, result?: unknown, options: SettleOptions & { withErrors?: boolean } = {}): Promise<JobRecord> {
    assertJsonValue(result ?? null, 'result')
    const record = await this.transition(jobId, options.withErrors ? 'completeWithErrors' : 'complete', options, (_c, _n, now) => ({
      [META.result]: encodeJson(result),
      [META.progress]: '100',
      [META.completedAt]: now,
      [META.errorMessage]: null,
      ...released(),
    }))
    this.settleTracked(jobId)
    this.hooks.safeEmit('job:completed', { job: toPublicJob(record) })
    return record
  }

  /**
   * Completes a runtime attempt, like `complete` with its attempt token. Completions that arrive
   * together are settled in one transaction (one lock, one read, one write for all of them), each
   * still checked under the lock against its attempt token and the transition table; every caller
   * gets its own record or error (LeaseLostError, IllegalTransitionError, JobNotFoundError).
   */
  completeAttempt(attempt: JobRecord, result?: unknown, options: { withErrors?: boolean } = {}): Promise<JobRecord> {
    const token = attempt.attemptToken
    if (!token) return this.complete(attempt.jobId, result, options)
    assertJsonValue(result ?? null, 'result')
    // Through the job's chain, so that it applies after this process's earlier writes to the job.
    return this.serialize(attempt.jobId, () => {
      const settled = new Promise<JobRecord>((resolve, reject) => {
        this.pendingCompletes.push({ postId: attempt.id, jobId: attempt.jobId, token, result, withErrors: options.withErrors === true, resolve, reject })
      })
      this.flushCompletes()
      return settled
    })
  }

  /**
   * One settle transaction at a time, started on the next turn of the event loop so that the
   * completions of one turn share it; completions that arrive meanwhile form the next batch.
   */
  private flushCompletes(): void {
    if (this.completing || this.pendingCompletes.length === 0) return
    this.completing = true
    setImmediate(() => {
      const batch = this.pendingCompletes.splice(0, SETTLE_BATCH)
      void this.settleCompletes(batch).finally(() => {
        this.completing = false
        this.flushCompletes()
      })
    })
  }

  private async settleCompletes(batch: PendingComplete[]): Promise<void> {
    let outcomes: ({ record: JobRecord } | { error: unknown })[]
    try {
      outcomes = await this.store.transaction(async (store) => {
        const ids = batch.map((item) => item.postId)
        await store.lockPosts(ids, { wait: true })
        const posts = new Map((await store.getPosts(ids)).map((post) => [post.id, post]))
        const now = isoNow(this.clock)
        const updates: { postId: number; meta: MetaWrite }[] = []
        const results = batch.map((item) => {
          const post = posts.get(item.postId)
          if (!post) return { error: new JobNotFoundError(item.jobId) }
          const current = jobRecordFromPost(post)
          if (current.attemptToken !== item.token) return { error: new LeaseLostError(item.jobId) }
          try {
            const next = nextStatus(item.withErrors ? 'completeWithErrors' : 'complete', current.status, current.pausedFrom)
            const meta: MetaWrite = {
              [META.status]: next,
              [META.result]: encodeJson(item.result),
              [META.progress]: '100',
              [META.completedAt]: now,
              [META.errorMessage]: null,
              ...released(),
            }
            updates.push({ postId: item.postId, meta })
            return { record: jobRecordFromPost(withWrites(post, meta, now)) }
          } catch (error) {
            return { error }
          }
        })
        await store.writeMetaMany(updates, now)
        return results
      })
    } catch (error) {
      for (const item of batch) item.reject(error)
      return
    }
    batch.forEach((item, index) => {
      const outcome = outcomes[index]!
      if ('error' in outcome) return item.reject(outcome.error)
      this.settleTracked(item.jobId)
      this.hooks.safeEmit('job:completed', { job: toPublicJob(outcome.record) })
      item.resolve(outcome.record)
    })
  }

  async fail(jobId: string, message: string, options: SettleOptions = {}): Promise<JobRecord> {
    const error = errorText(message)
    const record = await this.transition(jobId, 'fail', options, (_c, _n, now) => ({
      [META.errorMessage]: error,
      [META.completedAt]: now,
      ...released(),
    }))
    this.settleTracked(jobId)
    this.hooks.safeEmit('job:failed', { job: toPublicJob(record), error })
    return record
  }

  async cancel(jobId: string, options: SettleOptions = {}): Promise<JobRecord> {
    const record = await this.transition(jobId, 'cancel', options, (_c, _n, now) => ({
      [META.completedAt]: now,
      ...released(),
    }))
    this.settleTracked(jobId, 'cancelled')
    this.hooks.safeEmit('job:cancelled', { job: toPublicJob(record) })
    return record
  }

  async pause(jobId: string): Promise<JobRecord> {
    const record = await this.transition(jobId, 'pause', {}, (current) => ({
      [META.pausedFrom]: current.status,
      [META.queueOrder]: null,
    }))
    this.hooks.safeEmit('job:paused', { job: toPublicJob(record) })
    return record
  }

  async resume(jobId: string): Promise<JobRecord> {
    const record = await this.transition(jobId, 'resume', {}, (current, next) => ({
      [META.pausedFrom]: null,
      [META.queueOrder]: next === 'pending' && current.queued ? queueOrder(current.priority, current.runAt) : null,
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
    const record = await this.transition(jobId, 'requeue', options, (current, next) => {
      const runAt = new Date(this.clock.now() + Math.max(0, delayMs)).toISOString()
      return {
        ...(options.countAttempt === false ? { [META.attempts]: String(Math.max(0, current.attempts - 1)) } : {}),
        [META.errorMessage]: message,
        [META.runAt]: runAt,
        [META.queueOrder]: next === 'pending' && current.queued ? queueOrder(current.priority, runAt) : null,
        [META.pausedFrom]: next === 'paused' ? 'pending' : null,
        [META.lockedUntil]: null,
        [META.attemptToken]: null,
      }
    })
    this.hooks.safeEmit('job:retry', { job: toPublicJob(record), error: message, delayMs })
    return record
  }

  /** Runs a failed or cancelled job again, with a fresh set of attempts. */
  async retry(jobId: string): Promise<JobRecord> {
    const record = await this.transition(jobId, 'retry', {}, (current, _next, now) => ({
      [META.attempts]: '0',
      [META.progress]: '0',
      [META.errorMessage]: null,
      [META.result]: null,
      [META.completedAt]: null,
      [META.startedAt]: null,
      [META.runAt]: now,
      [META.queueOrder]: current.queued ? queueOrder(current.priority, now) : null,
    }))
    this.hooks.safeEmit('job:updated', { job: toPublicJob(record) })
    return record
  }

  /** Changes the priority of a waiting job (pending or paused). */
  async setPriority(jobId: string, priority: number): Promise<JobRecord> {
    return this.serialize(jobId, async () => {
      const current = await this.requireRecord(jobId)
      if (current.status !== 'pending' && current.status !== 'paused') {
        throw new IllegalTransitionError('change the priority of', current.status)
      }
      const updated = await this.store.updatePost(current.id, {
        meta: {
          [META.priority]: String(priority),
          [META.queueOrder]: current.status === 'pending' && current.queued ? queueOrder(priority, current.runAt) : null,
        },
        expect: [{ key: META.status, eq: current.status }],
        updatedAt: isoNow(this.clock),
      })
      if (!updated) throw new ConflictError('The job changed while its priority was being set; try again.')
      const record = jobRecordFromPost(updated)
      this.hooks.safeEmit('job:updated', { job: toPublicJob(record) })
      return record
    })
  }

  /** Deletes a finished job; 409 when it is pending, running or paused. */
  async deleteJob(jobId: string): Promise<void> {
    const current = await this.requireRecord(jobId)
    const deleted = await this.store.deletePostIf(current.id, [{ key: META.status, in: FINAL_STATUSES }])
    if (!deleted) throw new IllegalTransitionError('delete', current.status)
    this.tracked.delete(jobId)
    this.hooks.safeEmit('job:deleted', { jobId, createdBy: current.createdBy })
  }

  /** Deletes finished jobs whose completedAt is older than `daysOld` days, in batches. */
  async cleanupOldJobs(daysOld: number): Promise<number> {
    if (!Number.isInteger(daysOld) || daysOld < 1 || daysOld > 3650) {
      throw new ValidationError('daysOld must be an integer from 1 to 3650.')
    }
    const cutoff = new Date(this.clock.now() - daysOld * DAY_MS).toISOString()
    let deleted = 0
    for (;;) {
      const batch = await this.store.transaction(async (store) => {
        // Oldest first along the completed_at index: each batch costs O(log n + batch).
        const rows = await store.scanMeta({
          key: META.completedAt,
          below: cutoff,
          filter: { key: META.status, in: FINAL_STATUSES },
          postType: JOB_POST_TYPE,
          limit: CLEANUP_BATCH,
        })
        return store.deletePosts(rows.map((row) => row.postId))
      })
      deleted += batch
      if (batch < CLEANUP_BATCH) return deleted
    }
  }

  // ------------------------------------------------------------------------------------------
  // The queue (used by the runtime)

  /**
   * Claims due queued jobs, highest priority first, then oldest runAt, within the per-type slots:
   * each becomes `running` with a new attempt token and a lease until now + leaseMs. Atomic: one
   * write transaction; on PostgreSQL the posts rows are locked with SKIP LOCKED, so concurrent
   * workers never claim the same job.
   */
  async claimDueJobs(options: ClaimOptions): Promise<JobRecord[]> {
    const types = [...options.slots].filter(([, n]) => n > 0).map(([type]) => type)
    if (types.length === 0 || options.limit <= 0) return []
    const claimed = await this.store.transaction(async (store) => {
      const nowMs = this.clock.now()
      const now = new Date(nowMs).toISOString()
      const candidates = await store.scanMeta({
        key: META.queueOrder,
        suffixMax: { from: 6, max: now },
        filter: { key: META.type, in: types },
        limit: options.limit * 4 + 16,
      })
      const locked = await store.lockPosts(candidates.map((candidate) => candidate.postId))
      const records = await store.getPosts(locked)
      const slots = new Map(options.slots)
      const chosen: JobRecord[] = []
      for (const record of records.map(jobRecordFromPost)) {
        if (chosen.length >= options.limit) break
        const free = slots.get(record.type) ?? 0
        // Re-checked under the lock: another writer may have paused or cancelled it meanwhile.
        if (free <= 0 || record.status !== 'pending' || !record.queued || record.runAt > now) continue
        slots.set(record.type, free - 1)
        chosen.push(record)
      }
      const lockedUntil = new Date(nowMs + options.leaseMs).toISOString()
      const updates = chosen.map((record) => ({
        postId: record.id,
        meta: {
          [META.status]: 'running',
          [META.attempts]: String(record.attempts + 1),
          [META.attemptToken]: uuidv4(),
          [META.lockedUntil]: lockedUntil,
          [META.startedAt]: record.startedAt ?? now,
          [META.queueOrder]: null,
        } satisfies MetaWrite,
      }))
      await store.writeMetaMany(updates, now)
      // The rows are ours until commit, so the written state is known without reading it back.
      const byId = new Map(records.map((post) => [post.id, post]))
      return updates.map((update) => jobRecordFromPost(withWrites(byId.get(update.postId)!, update.meta, now)))
    })
    for (const record of claimed) this.hooks.safeEmit('job:started', { job: toPublicJob(record) })
    return claimed
  }

  /** Extends the leases of attempts this worker holds; returns the job ids still ours. */
  async renewLeases(attemptTokens: string[], leaseMs: number): Promise<Set<number>> {
    const until = new Date(this.clock.now() + leaseMs).toISOString()
    const ids = await this.store.setMetaWhere({
      key: META.lockedUntil,
      value: until,
      matchKey: META.attemptToken,
      matchValues: attemptTokens,
    })
    return new Set(ids)
  }

  /** Jobs whose lease ran out (their worker died or hung), oldest first. */
  async findExpiredLeases(limit: number): Promise<JobRecord[]> {
    const rows = await this.store.scanMeta({ key: META.lockedUntil, below: isoNow(this.clock), limit })
    return this.getJobRecords(rows.map((row) => row.postId))
  }

  /**
   * Gives an expired attempt back: to `pending` (attempt counted) or `failed` when no attempts are
   * left. Only while the lease is still the expired one, so a worker that renewed in time wins.
   */
  async recoverExpiredLease(record: JobRecord, retryDelayMs: number): Promise<JobRecord | null> {
    if (!record.attemptToken || !record.lockedUntil) return null
    const options: SettleOptions = {
      attemptToken: record.attemptToken,
      expect: [{ key: META.lockedUntil, lt: isoNow(this.clock) }],
    }
    const message = `The worker running attempt ${record.attempts} stopped responding (lease expired).`
    try {
      return record.attempts >= record.maxAttempts
        ? await this.fail(record.jobId, message, options)
        : await this.requeue(record.jobId, message, retryDelayMs, options)
    } catch (error) {
      if (error instanceof LeaseLostError || error instanceof IllegalTransitionError || error instanceof ConflictError) return null
      throw error
    }
  }

  // ------------------------------------------------------------------------------------------
  // The state machine

  /**
   * Reads the job, asks the transition table for the next status, and writes `build(...)` only if
   * the status (and attempt token, when given) is still what was read. A lost race re-reads and
   * decides again, so the loser sees the winner's status and gets ILLEGAL_TRANSITION.
   */
  async transition(jobId: string, action: JobAction, options: SettleOptions, build: MetaBuilder): Promise<JobRecord> {
    return this.serialize(jobId, async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = await this.requireRecord(jobId)
        if (options.attemptToken !== undefined && current.attemptToken !== options.attemptToken) {
          throw new LeaseLostError(jobId)
        }
        const next = nextStatus(action, current.status, current.pausedFrom)
        const now = isoNow(this.clock)
        const expect: MetaCondition[] = [{ key: META.status, eq: current.status }, ...(options.expect ?? [])]
        if (options.attemptToken !== undefined) expect.push({ key: META.attemptToken, eq: options.attemptToken })
        const updated = await this.store.updatePost(current.id, {
          meta: { [META.status]: next, ...build(current, next, now) },
          expect,
          updatedAt: now,
        })
        if (updated) return jobRecordFromPost(updated)
      }
      throw new ConflictError(`Job ${jobId} kept changing; try again.`)
    })
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
      entry.controller.abort(new Error('timeout'))
      this.fail(record.jobId, `Timed out after ${record.timeout} ms.`)
        .catch((error) => {
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
    if (abortReason && !entry.controller.signal.aborted) entry.controller.abort(new Error(abortReason))
    this.tracked.delete(jobId)
  }

  /** Stops every tracked-job timer (graceful shutdown). */
  close(): void {
    for (const entry of this.tracked.values()) clearTimeout(entry.timer)
    this.tracked.clear()
  }
}

/** Most runtime completions settled in one transaction. */
const SETTLE_BATCH = 200

interface PendingComplete {
  postId: number
  jobId: string
  token: string
  result: unknown
  withErrors: boolean
  resolve(record: JobRecord): void
  reject(error: unknown): void
}

/** A post as it is after `meta` was written to it (for rows locked by the writer). */
function withWrites(post: PostRecord, meta: MetaWrite, updatedAt: string): PostRecord {
  const merged = { ...post.meta }
  for (const [key, value] of Object.entries(meta)) {
    if (value === null) delete merged[key]
    else merged[key] = value
  }
  return { ...post, meta: merged, updatedAt }
}

/** Meta writes that release a job's place in the queue and its lease. */
function released(): MetaWrite {
  return { [META.queueOrder]: null, [META.lockedUntil]: null, [META.pausedFrom]: null }
}

function errorText(message: unknown): string {
  const text = typeof message === 'string' ? message : message instanceof Error ? message.message : String(message)
  return (text || 'Failed.').slice(0, MAX_ERROR_LENGTH)
}
