import { z } from 'zod'
import type { Clock } from '../clock.js'
import { IllegalTransitionError, LeaseLostError, UnrecoverableError, ValidationError, coerceError } from '../errors.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { Logger } from '../logger.js'
import { assertJsonValue, describeIssues, MAX_TIMEOUT_MS, parseOrThrow } from '../registry/jobInput.js'
import { encodeJson, JOB_POST_TYPE, type JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import { backoffDelay, type BackoffOptions } from '../runtime/backoff.js'
import {
  CompletedWithErrors,
  type ProcessableJob,
  type ProcessorContext,
  type ProcessorRegistry,
} from '../runtime/ProcessorRegistry.js'
import type { MetaWrite, PostRecord, PostStore } from '../store/PostStore.js'

/**
 * Batches (FotoKopilot's conveyor belt): a job whose `data.items` are processed one by one by a
 * per-item handler, with their own concurrency and retries.
 *
 * Storage: each item is a small post of type `job_batch_items` (slug `<jobId>:<index>`, meta
 * `parent_job_id` = the batch's jobId, which is an indexed key). Not meta of the batch job: every
 * read of a job loads all its meta, so thousands of item rows there would make each status change,
 * list and progress write of the batch pay for its items. As posts, an item change is one small
 * conditional-free upsert of its own rows (≤ 2 writes per attempt), the batch post stays small,
 * and exports page through the items in id (= item) order. Items are deleted with their batch
 * (job:deleted) and by the retention sweep (orphans of jobs removed by cleanup).
 */

export const BATCH_ITEM_POST_TYPE = 'job_batch_items'
export const BATCH_ITEM_STATUSES = ['pending', 'processing', 'completed', 'failed', 'retry'] as const
export type BatchItemStatus = (typeof BATCH_ITEM_STATUSES)[number]
export const MAX_BATCH_ITEMS = 10_000
const PAGE = 500
const ITEM_RESULT_MAX_BYTES = 64 * 1024
const MAX_ITEM_ERROR = 2000

const IM = {
  parentJobId: 'parent_job_id',
  index: 'item_index',
  id: 'item_id',
  status: 'item_status',
  attempts: 'attempts',
  error: 'error',
  result: 'result',
  input: 'input',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
} as const

export interface BatchItem {
  /** Position in `data.items` (0-based). */
  index: number
  /** The item's own `id`. */
  id: string | number
  status: BatchItemStatus
  attempts: number
  error: string | null
  result: unknown
  startedAt: string | null
  finishedAt: string | null
}

interface StoredItem extends BatchItem {
  postId: number
  input: Record<string, unknown>
}

export interface BatchItemInput {
  id: string | number
  [field: string]: unknown
}

export interface BatchItemContext {
  /** Aborts when the batch is cancelled (or its attempt is interrupted). */
  signal: AbortSignal
  /** 1 for the item's first attempt. */
  attempt: number
  job: ProcessableJob
  log(message: string, fields?: Record<string, unknown>): void
}

/** Returns the item's result (JSON, ≤ 64 KB) or throws; `UnrecoverableError` fails the item at once. */
export type BatchItemHandler = (item: BatchItemInput, context: BatchItemContext) => unknown | Promise<unknown>

export interface BatchProcessorOptions {
  /** Items of one batch processed at once (default 3). */
  itemConcurrency?: number
  /** Attempts per item (default 3). */
  itemMaxAttempts?: number
  /** Delay between an item's attempts (default exponential from 2 s: 2 s, 4 s, 8 s). */
  itemBackoff?: BackoffOptions
  /** ms per item attempt; a slower attempt fails (and may retry). */
  itemTimeout?: number
  /** Batch jobs of this type running at once in a process (default 1). */
  concurrency?: number
  /** Attempts of the batch job itself, i.e. resumptions after a crash or lost lease (default 3). */
  maxAttempts?: number
}

export interface BatchSummary {
  total: number
  completed: number
  failed: number
  pending: number
}

const backoffSchema = z.strictObject({
  type: z.enum(['fixed', 'linear', 'exponential']),
  delay: z.number().int().min(0).max(MAX_TIMEOUT_MS),
  maxDelay: z.number().int().min(0).max(MAX_TIMEOUT_MS).optional(),
  jitter: z.number().min(0).max(1).optional(),
})

const optionsSchema = z.strictObject({
  itemConcurrency: z.number().int().min(1).max(100).optional(),
  itemMaxAttempts: z.number().int().min(1).max(100).optional(),
  itemBackoff: backoffSchema.optional(),
  itemTimeout: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
  concurrency: z.number().int().min(1).max(1000).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
})

export const batchItemsSchema = z
  .array(z.looseObject({ id: z.union([z.string().min(1).max(200), z.number().int()]) }), { error: 'items must be an array of objects with an id' })
  .max(MAX_BATCH_ITEMS, `a batch holds at most ${MAX_BATCH_ITEMS} items`)

interface RegisteredBatch {
  handler: BatchItemHandler
  itemConcurrency: number
  itemMaxAttempts: number
  itemBackoff: BackoffOptions
  itemTimeout?: number
}

export interface BatchEngineOptions {
  store: PostStore
  jobs: RegisterJobs
  processors: ProcessorRegistry
  hooks: HookRegistry
  clock: Clock
  logger: Logger
  /** How often a running batch re-reads its job's status (pause/cancel from other processes). */
  controlPollMs?: number
}

class ItemAborted extends Error {}

export class BatchEngine {
  private readonly types = new Map<string, RegisteredBatch>()

  constructor(private readonly options: BatchEngineOptions) {
    // A deleted batch takes its items along.
    options.hooks.on('job:deleted', ({ jobId }) => {
      void this.deleteItems(jobId).catch((error) => options.logger.error({ err: error, jobId }, 'Could not delete batch items'))
    })
  }

  isBatchType(type: string): boolean {
    return this.types.has(type)
  }

  /** Registers the job processor of `type` that runs `handler` on every item of a batch job. */
  register(type: string, handler: BatchItemHandler, options: BatchProcessorOptions = {}, owner = 'core'): void {
    if (typeof handler !== 'function') throw new ValidationError('A batch item handler must be a function.')
    const parsed = optionsSchema.safeParse(options)
    if (!parsed.success) throw new ValidationError(`Invalid batch options: ${describeIssues(parsed.error)}`)
    const o = parsed.data
    const batch: RegisteredBatch = {
      handler,
      itemConcurrency: o.itemConcurrency ?? 3,
      itemMaxAttempts: o.itemMaxAttempts ?? 3,
      itemBackoff: o.itemBackoff ?? { type: 'exponential', delay: 2000 },
      itemTimeout: o.itemTimeout,
    }
    this.options.processors.register(type, (job, context) => this.run(batch, job, context), { concurrency: o.concurrency ?? 1, maxAttempts: o.maxAttempts ?? 3 }, owner)
    this.types.set(type, batch)
  }

  /** Checks `items` before a batch is enqueued (the processor checks again at run time). */
  validateItems(items: unknown): BatchItemInput[] {
    return parseOrThrow(batchItemsSchema, items) as BatchItemInput[]
  }

  /** Every item of a batch, in item order (paged reads). */
  async listItems(jobId: string): Promise<BatchItem[]> {
    return (await this.loadItems(jobId)).map(({ postId: _p, input: _i, ...item }) => item)
  }

  async summary(jobId: string): Promise<BatchSummary> {
    return summarize(await this.loadItems(jobId))
  }

  // ------------------------------------------------------------------------------------------

  private async run(batch: RegisteredBatch, job: ProcessableJob, context: ProcessorContext): Promise<unknown> {
    const items = await this.ensureItems(job, context.attempt)
    const control = new BatchControl({ ...this.options, jobId: job.jobId, signal: context.signal })
    const counts = summarize(items)
    let lastProgress = -1
    const report = async (force = false) => {
      const progress = counts.total === 0 ? 100 : Math.floor(((counts.completed + counts.failed) * 100) / counts.total)
      if (!force && progress === lastProgress) return
      lastProgress = progress
      try {
        await context.updateProgress(progress, { batch: { ...counts } })
      } catch (error) {
        if (!(error instanceof IllegalTransitionError || error instanceof LeaseLostError)) throw error
      }
    }
    const queue = items.filter((item) => item.status !== 'completed' && item.status !== 'failed')
    const worker = async () => {
      for (;;) {
        if (!(await control.gate())) return
        const item = queue.shift()
        if (!item) return
        const before = item.status
        await this.processItem(batch, job, item, control, context)
        if (item.status === 'completed' || item.status === 'failed') {
          if (before !== item.status) {
            counts.pending--
            counts[item.status]++
          }
          await report()
        }
      }
    }
    try {
      await report(true)
      await Promise.all(Array.from({ length: Math.min(batch.itemConcurrency, Math.max(1, queue.length)) }, worker))
    } finally {
      control.dispose()
    }
    if (control.stopped) {
      // Cancelled (already settled by whoever cancelled) or interrupted: the runtime decides.
      throw control.stopReason ?? new ItemAborted('The batch was stopped.')
    }
    await report(true)
    const summary = { ...counts }
    if (counts.total > 0 && counts.failed === counts.total) {
      throw new UnrecoverableError(`All ${counts.total} items failed.`)
    }
    return counts.failed > 0 ? new CompletedWithErrors(summary) : summary
  }

  private async processItem(batch: RegisteredBatch, job: ProcessableJob, item: StoredItem, control: BatchControl, context: ProcessorContext) {
    for (;;) {
      const attempt = item.attempts + 1
      await this.writeItem(item, {
        status: 'processing',
        attempts: attempt,
        startedAt: item.startedAt ?? this.nowIso(),
      })
      const controller = new AbortController()
      const abort = () => controller.abort(new ItemAborted('aborted'))
      const unlink = control.onStop(abort)
      let timer: NodeJS.Timeout | undefined
      if (batch.itemTimeout) {
        timer = setTimeout(() => controller.abort(new Error(`Timed out after ${batch.itemTimeout} ms.`)), batch.itemTimeout)
        timer.unref()
      }
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true })
      })
      aborted.catch(() => undefined)
      try {
        const result = await Promise.race([
          Promise.resolve().then(() =>
            batch.handler(structuredClone(item.input) as BatchItemInput, {
              signal: controller.signal,
              attempt,
              job,
              log: (message, fields) => context.log(message, { itemId: item.id, ...fields }),
            }),
          ),
          aborted,
        ])
        assertJsonValue(result ?? null, `the result of item ${String(item.id)}`, ITEM_RESULT_MAX_BYTES)
        await this.writeItem(item, { status: 'completed', result: result ?? null, error: null, finishedAt: this.nowIso() })
        return
      } catch (thrown) {
        if (control.stopped) {
          // A cancel marks the interrupted item failed; any other stop leaves it for the next attempt.
          if (control.cancelled) await this.writeItem(item, { status: 'failed', error: 'Cancelled while processing.', finishedAt: this.nowIso() })
          return
        }
        const error = coerceError(thrown)
        const message = (error.message || 'Failed.').slice(0, MAX_ITEM_ERROR)
        const retryable = !(thrown instanceof UnrecoverableError) && (thrown as { retryable?: unknown }).retryable !== false
        if (retryable && attempt < batch.itemMaxAttempts) {
          await this.writeItem(item, { status: 'retry', error: message })
          if (!(await control.sleep(backoffDelay(batch.itemBackoff, attempt)))) return
          // A retry is a new start: it waits while the batch is paused.
          if (!(await control.gate())) return
          continue
        }
        await this.writeItem(item, { status: 'failed', error: message, finishedAt: this.nowIso() })
        return
      } finally {
        clearTimeout(timer)
        unlink()
      }
    }
  }

  /** Creates the item posts on the first run (idempotent: only missing indexes are created). */
  private async ensureItems(job: ProcessableJob, attempt: number): Promise<StoredItem[]> {
    const raw = (job.data as { items?: unknown } | null)?.items
    const parsed = batchItemsSchema.safeParse(raw ?? [])
    if (!parsed.success) throw new UnrecoverableError(`Invalid batch items: ${describeIssues(parsed.error)}`)
    const inputs = parsed.data as BatchItemInput[]
    const existing = await this.loadItems(job.jobId)
    const have = new Set(existing.map((item) => item.index))
    const createdAt = this.nowIso()
    const missing = inputs
      .map((input, index) => ({ input, index }))
      .filter(({ index }) => !have.has(index))
      .map(({ input, index }) => ({
        postType: BATCH_ITEM_POST_TYPE,
        title: String(input.id).slice(0, 200),
        slug: `${job.jobId}:${index}`,
        createdAt,
        meta: {
          [IM.parentJobId]: job.jobId,
          [IM.index]: String(index),
          [IM.id]: encodeJson(input.id),
          [IM.status]: 'pending',
          [IM.attempts]: '0',
          [IM.input]: encodeJson(input),
        },
      }))
    for (let i = 0; i < missing.length; i += PAGE) await this.options.store.createPosts(missing.slice(i, i + PAGE))
    let items = missing.length ? await this.loadItems(job.jobId) : existing
    if (attempt === 1 && existing.length > 0) {
      // A first attempt that finds items is a retry of a finished batch: its failed items run again.
      const again = items.filter((item) => item.status !== 'completed' && item.status !== 'pending')
      await this.options.store.writeMetaMany(
        again.map((item) => ({
          postId: item.postId,
          meta: { [IM.status]: 'pending', [IM.attempts]: '0', [IM.error]: null, [IM.finishedAt]: null },
        })),
        createdAt,
      )
      if (again.length) items = await this.loadItems(job.jobId)
    }
    return items
  }

  private async loadItems(jobId: string): Promise<StoredItem[]> {
    const { store } = this.options
    const items: StoredItem[] = []
    for (let offset = 0; ; offset += PAGE) {
      const ids = await store.findPostIds({
        postType: BATCH_ITEM_POST_TYPE,
        where: [{ key: IM.parentJobId, eq: jobId }],
        order: 'oldest',
        limit: PAGE,
        offset,
      })
      items.push(...(await store.getPosts(ids)).map(itemFromPost))
      if (ids.length < PAGE) break
    }
    return items.sort((a, b) => a.index - b.index)
  }

  /** Deletes the items of a batch, in pages. */
  async deleteItems(jobId: string): Promise<number> {
    let deleted = 0
    for (;;) {
      const ids = await this.options.store.findPostIds({
        postType: BATCH_ITEM_POST_TYPE,
        where: [{ key: IM.parentJobId, eq: jobId }],
        limit: PAGE,
      })
      if (ids.length === 0) return deleted
      deleted += await this.options.store.deletePosts(ids)
    }
  }

  /** Deletes items whose batch job is gone (removed by cleanup), in pages; returns how many. */
  async sweepOrphans(): Promise<number> {
    let deleted = 0
    for (;;) {
      const ids = await this.options.store.findOrphanPostIds({
        postType: BATCH_ITEM_POST_TYPE,
        parentKey: IM.parentJobId,
        parentType: JOB_POST_TYPE,
        limit: PAGE,
      })
      if (ids.length === 0) return deleted
      deleted += await this.options.store.deletePosts(ids)
    }
  }

  private async writeItem(
    item: StoredItem,
    change: Partial<Pick<BatchItem, 'status' | 'attempts' | 'error' | 'result' | 'startedAt' | 'finishedAt'>>,
  ) {
    const meta: MetaWrite = {}
    if (change.status !== undefined) meta[IM.status] = change.status
    if (change.attempts !== undefined) meta[IM.attempts] = String(change.attempts)
    if (change.error !== undefined) meta[IM.error] = change.error
    if (change.result !== undefined) meta[IM.result] = encodeJson(change.result)
    if (change.startedAt !== undefined) meta[IM.startedAt] = change.startedAt
    if (change.finishedAt !== undefined) meta[IM.finishedAt] = change.finishedAt
    await this.options.store.updatePost(item.postId, { meta, updatedAt: this.nowIso() })
    Object.assign(item, change)
  }

  private nowIso(): string {
    return new Date(this.options.clock.now()).toISOString()
  }
}

function summarize(items: BatchItem[]): BatchSummary {
  const counts = { total: items.length, completed: 0, failed: 0, pending: 0 }
  for (const item of items) {
    if (item.status === 'completed') counts.completed++
    else if (item.status === 'failed') counts.failed++
    else counts.pending++
  }
  return counts
}

function itemFromPost(post: PostRecord): StoredItem {
  const m = post.meta
  const json = (text: string | undefined, fallback: unknown) => {
    if (text === undefined) return fallback
    try {
      return JSON.parse(text)
    } catch {
      return fallback
    }
  }
  const status = BATCH_ITEM_STATUSES.includes(m[IM.status] as BatchItemStatus) ? (m[IM.status] as BatchItemStatus) : 'pending'
  return {
    postId: post.id,
    index: Number(m[IM.index] ?? 0),
    id: json(m[IM.id], post.title) as string | number,
    status,
    attempts: Number(m[IM.attempts] ?? 0),
    error: m[IM.error] ?? null,
    result: json(m[IM.result], null),
    startedAt: m[IM.startedAt] ?? null,
    finishedAt: m[IM.finishedAt] ?? null,
    input: json(m[IM.input], {}) as Record<string, unknown>,
  }
}

/**
 * Pause and cancel for one running batch: follows the job's status through local events and a
 * periodic re-read (for changes made by other processes). `gate()` waits while the job is paused
 * and says whether work may go on; a cancel (or the attempt's own abort) stops everything.
 */
class BatchControl {
  private status: JobRecord['status'] = 'running'
  private waiters: (() => void)[] = []
  private stopListeners = new Set<() => void>()
  private readonly unsubscribe: (() => void)[] = []
  private readonly timer: NodeJS.Timeout
  stopped = false
  cancelled = false
  stopReason: unknown

  constructor(
    private readonly options: BatchEngineOptions & { jobId: string; signal: AbortSignal },
  ) {
    const { hooks, jobId, signal } = options
    const follow = ({ job }: { job: { jobId: string; status: JobRecord['status'] } }) => {
      if (job.jobId === jobId) this.observe(job.status)
    }
    this.unsubscribe.push(hooks.on('job:paused', follow), hooks.on('job:resumed', follow), hooks.on('job:cancelled', follow))
    const onAbort = () => {
      // The runtime aborts with reason 'cancelled' when the job was cancelled (see JobRuntime).
      if (signal.reason === 'cancelled') this.cancelled = true
      this.stop(signal.reason)
    }
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    this.unsubscribe.push(() => signal.removeEventListener('abort', onAbort))
    this.timer = setInterval(() => {
      void options.jobs
        .getJobRecord(jobId)
        .then((record) => record && this.observe(record.status))
        .catch(() => undefined)
    }, options.controlPollMs ?? 500)
    this.timer.unref()
  }

  private observe(status: JobRecord['status']) {
    this.status = status
    if (status === 'cancelled') {
      this.cancelled = true
      this.stop(new ItemAborted('The batch was cancelled.'))
    } else if (status !== 'paused') {
      this.release()
    }
  }

  private stop(reason: unknown) {
    if (this.stopped) return
    this.stopped = true
    this.stopReason = reason
    for (const listener of [...this.stopListeners]) listener()
    this.release()
  }

  private release() {
    for (const resolve of this.waiters.splice(0)) resolve()
  }

  /** Waits while paused; false once the batch is stopped. */
  async gate(): Promise<boolean> {
    while (!this.stopped && this.status === 'paused') {
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
    return !this.stopped
  }

  /** Sleeps `ms` unless stopped first; false when stopped. */
  sleep(ms: number): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.stopListeners.delete(wake)
        resolve(!this.stopped)
      }, ms)
      timer.unref()
      const wake = () => {
        clearTimeout(timer)
        resolve(false)
      }
      this.stopListeners.add(wake)
    })
  }

  onStop(listener: () => void): () => void {
    if (this.stopped) {
      listener()
      return () => undefined
    }
    this.stopListeners.add(listener)
    return () => this.stopListeners.delete(listener)
  }

  dispose() {
    clearInterval(this.timer)
    for (const unsubscribe of this.unsubscribe) unsubscribe()
    this.release()
  }
}
