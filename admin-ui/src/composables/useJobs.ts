import { computed, getCurrentScope, onScopeDispose, shallowRef, watch } from 'vue'
import { ApiRequestError, errorText, isMissingRoute, type ApiClient, type JobAction } from '../api/client'
import { JOB_STATUSES, isFinalStatus, type BulkAction, type BulkOutcome, type Job, type JobSort, type JobStats, type JobStatus } from '../contract'
import { createCoalescer } from '../lib/coalesce'
import { isNewer } from '../lib/jobs'
import type { JobsSocket } from './useJobsSocket'

export const JOB_TABS = [
  { id: 'active', label: 'Active', statuses: ['pending', 'running'] },
  { id: 'paused', label: 'Paused', statuses: ['paused'] },
  { id: 'completed', label: 'Completed', statuses: ['completed', 'completed_with_errors'] },
  { id: 'failed', label: 'Failed', statuses: ['failed'] },
  { id: 'cancelled', label: 'Cancelled', statuses: ['cancelled'] },
  { id: 'all', label: 'All', statuses: [...JOB_STATUSES] },
] as const satisfies readonly { id: string; label: string; statuses: readonly JobStatus[] }[]
export type JobTabId = (typeof JOB_TABS)[number]['id']

export const PAGE_SIZES = [20, 50, 100, 200] as const

export function isJobTabId(value: unknown): value is JobTabId {
  return JOB_TABS.some((tab) => tab.id === value)
}

/** What the jobs page shows: everything the address bar holds (JobsView keeps the two in step). */
export interface JobsQueryState {
  tab: JobTabId
  search: string
  type: string
  source: string
  sort: JobSort | ''
  /** 1-based. */
  page: number
  size: number
}

export interface ActionResult {
  done: number
  failed: { jobId: string; message: string }[]
}

/** A bulk action in progress (the server's `bulk_action` job), or its outcome. */
export interface BulkProgress {
  bulkJobId: string
  action: BulkAction
  status: JobStatus
  progress: number
  outcome: BulkOutcome | null
  error: string | null
}

export interface JobsOptions {
  api: Pick<ApiClient, 'listJobs' | 'stats' | 'jobAction' | 'deleteJob' | 'cleanup' | 'bulk' | 'getJob'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** The page's state; reactive (changes reload the list). */
  state: JobsQueryState
  /** After a change that may move rows between pages, reload after this long (default 250 ms)... */
  reloadDelayMs?: number
  /** ...and no more than once per this long during a burst (default 1500 ms). */
  minReloadIntervalMs?: number
  /** Live updates are applied at most this often (default 100 ms). */
  flushMs?: number
}

const keyOf = (state: JobsQueryState) => JSON.stringify([state.tab, state.search.trim(), state.type, state.source.trim(), state.sort, state.page, state.size])

/**
 * The jobs page's data: one server-side page of the tab's statuses with search, type and source
 * filters and a sort, the counts per status, and live updates. Rows belong to the query that read
 * them: after a change of tab or filter the old rows are not shown under the new one, even when the
 * server cannot be reached (an honest empty state instead). Updates from the socket are gathered and
 * applied at most every `flushMs`; a change that may move rows between pages reloads the page, at
 * most once per `minReloadIntervalMs` during a burst.
 */
export function useJobs(options: JobsOptions) {
  const state = options.state
  const rows = shallowRef<Job[]>([])
  const rowsKey = shallowRef<string | null>(null)
  const loadedTotal = shallowRef(0)
  const totalCapped = shallowRef(false)
  const stats = shallowRef<JobStats | null>(null)
  const loading = shallowRef(false)
  const error = shallowRef<string | null>(null)
  /** When the rows were read (ms), to say how old they are while offline. */
  const loadedAt = shallowRef<number | null>(null)
  /** Whether the server sorts (`sort` of GET /jobs); an older one answers 400 and the headers stop offering it. */
  const sortSupported = shallowRef(true)
  const bulk = shallowRef<BulkProgress | null>(null)
  let reloadTimer: ReturnType<typeof setTimeout> | undefined
  let bulkPoll: ReturnType<typeof setTimeout> | undefined
  let lastLoad = 0
  let requestSeq = 0
  let disposed = false

  const tab = computed(() => JOB_TABS.find((t) => t.id === state.tab) ?? JOB_TABS[0])
  const currentKey = computed(() => keyOf(state))
  /** Only rows read for the current query. */
  const jobs = computed(() => (rowsKey.value === currentKey.value ? rows.value : []))
  /** Matches of the current query (0 until they are read: never another tab's total). */
  const total = computed(() => (rowsKey.value === currentKey.value ? loadedTotal.value : 0))
  const tabCounts = computed(
    () =>
      Object.fromEntries(
        JOB_TABS.map((t) => [t.id, stats.value ? t.statuses.reduce((sum, s) => sum + (stats.value!.byStatus[s] ?? 0), 0) : null]),
      ) as Record<JobTabId, number | null>,
  )
  const types = computed(() => Object.keys(stats.value?.byType ?? {}).sort())
  const pageCount = computed(() => Math.max(1, Math.ceil(total.value / state.size)))
  const offset = computed(() => (state.page - 1) * state.size)

  const filterOf = () => ({
    status: [...tab.value.statuses],
    search: state.search.trim() || undefined,
    type: state.type || undefined,
    source: state.source.trim() || undefined,
  })

  async function load() {
    const seq = ++requestSeq
    const key = currentKey.value
    lastLoad = Date.now()
    clearTimeout(reloadTimer)
    reloadTimer = undefined
    loading.value = true
    try {
      const query = { ...filterOf(), sort: sortSupported.value && state.sort ? state.sort : undefined, limit: state.size, offset: offset.value }
      const [list, counts] = await Promise.all([
        options.api.listJobs(query).catch((e: unknown) => {
          // A server without `sort` refuses it as an unknown parameter: ask again without it.
          if (query.sort && e instanceof ApiRequestError && e.status === 400 && /sort/i.test(e.message)) {
            sortSupported.value = false
            return options.api.listJobs({ ...query, sort: undefined })
          }
          throw e
        }),
        options.api.stats().catch(() => stats.value),
      ])
      if (seq !== requestSeq || disposed) return
      // The page emptied under us (deletes, bulk actions): go to the last page there is.
      if (list.jobs.length === 0 && state.page > 1 && list.meta.total > 0) {
        state.page = Math.max(1, Math.ceil(list.meta.total / state.size))
        return
      }
      rows.value = list.jobs
      rowsKey.value = key
      loadedTotal.value = list.meta.total
      totalCapped.value = list.meta.totalCapped === true
      if (counts) stats.value = counts
      loadedAt.value = Date.now()
      error.value = null
    } catch (e) {
      if (seq !== requestSeq || disposed) return
      error.value = errorText(e)
      // Rows of another query are not shown under this one.
      if (rowsKey.value !== key) {
        rows.value = []
        rowsKey.value = null
      }
    } finally {
      if (seq === requestSeq) loading.value = false
    }
  }

  function reloadSoon() {
    if (disposed || reloadTimer !== undefined) return
    const wait = Math.max(options.reloadDelayMs ?? 250, lastLoad + (options.minReloadIntervalMs ?? 1500) - Date.now())
    reloadTimer = setTimeout(() => {
      reloadTimer = undefined
      void load()
    }, wait)
  }

  function trackBulk(job: Job) {
    const current = bulk.value
    if (!current || current.bulkJobId !== job.jobId) return
    const outcome = isFinalStatus(job.status) && job.result && typeof job.result === 'object' ? (job.result as BulkOutcome) : null
    bulk.value = {
      ...current,
      status: job.status,
      progress: job.status === 'completed' ? 100 : job.progress,
      outcome,
      error: job.status === 'failed' ? job.errorMessage : null,
    }
    if (isFinalStatus(job.status)) {
      clearTimeout(bulkPoll)
      void load()
    }
  }

  const updates = createCoalescer<Job>({
    intervalMs: options.flushMs ?? 100,
    merge: (waiting, next) => (isNewer(next, waiting) ? next : waiting),
    flush(batch) {
      if (disposed) return
      let next: Job[] | null = null
      let moved = false
      const list = rows.value
      const index = new Map(list.map((job, i) => [job.jobId, i]))
      for (const job of batch.values()) {
        trackBulk(job)
        const i = index.get(job.jobId)
        if (i === undefined) {
          // A job not on this page: it may belong here now (new, or moved into this tab).
          moved = true
          continue
        }
        const current = (next ?? list)[i]!
        if (!isNewer(job, current)) continue
        next ??= [...list]
        next[i] = job
        if (current.status !== job.status) moved = true
      }
      if (next) rows.value = next
      if (moved) reloadSoon()
    },
  })

  const unsubscribe = options.socket.subscribe((message) => {
    switch (message.type) {
      case 'connected':
        // After a reconnect, anything may have happened: read the page again at once.
        void load()
        if (bulk.value && !isFinalStatus(bulk.value.status)) void pollBulk()
        return
      case 'job_update':
        updates.push(message.job.jobId, message.job)
        return
      case 'job_deleted':
        reloadSoon()
        return
      case 'pong':
      case 'error':
      case 'job_log':
        return
      default: {
        const never: never = message
        return never
      }
    }
  })

  watch(currentKey, () => void load())

  /** The bulk job's state, read now and then in case its updates do not reach this socket. */
  async function pollBulk() {
    clearTimeout(bulkPoll)
    const current = bulk.value
    if (!current || isFinalStatus(current.status) || disposed) return
    try {
      trackBulk(await options.api.getJob(current.bulkJobId))
    } catch {
      // Offline: the next poll or the reconnect reads it.
    }
    if (bulk.value && !isFinalStatus(bulk.value.status)) bulkPoll = setTimeout(() => void pollBulk(), 2000)
  }

  function dispose() {
    disposed = true
    clearTimeout(reloadTimer)
    clearTimeout(bulkPoll)
    updates.stop()
    unsubscribe()
  }
  if (getCurrentScope()) onScopeDispose(dispose)

  /** One request per job (a few selected jobs). */
  async function act(jobIds: string[], action: JobAction | 'delete'): Promise<ActionResult> {
    const results = await Promise.allSettled(
      jobIds.map((jobId) => (action === 'delete' ? options.api.deleteJob(jobId) : options.api.jobAction(jobId, action))),
    )
    const failed = results.flatMap((result, i) => (result.status === 'rejected' ? [{ jobId: jobIds[i]!, message: errorText(result.reason) }] : []))
    await load()
    return { done: results.length - failed.length, failed }
  }

  /**
   * An action on every job matching the current tab and filters (or on listed jobs), done by the
   * server's bulk job; its progress shows in `bulk`. Throws with a clear message when the server has
   * no bulk route (listed jobs then go one request each, through `act`).
   */
  async function runBulk(action: BulkAction, target: { jobIds: string[] } | 'matching') {
    const body = target === 'matching' ? { action, filter: filterOf() } : { action, jobIds: target.jobIds }
    try {
      const bulkJobId = await options.api.bulk(body)
      bulk.value = { bulkJobId, action, status: 'pending', progress: 0, outcome: null, error: null }
      bulkPoll = setTimeout(() => void pollBulk(), 2000)
      return bulkJobId
    } catch (e) {
      if (isMissingRoute(e)) {
        throw new Error(
          target === 'matching'
            ? 'This server cannot act on every matching job yet (no POST /api/v1/jobs/bulk); select jobs on the page instead.'
            : 'No bulk route on this server.',
          { cause: e },
        )
      }
      throw e
    }
  }

  return {
    state,
    jobs,
    total,
    totalCapped,
    offset,
    pageCount,
    stats,
    tabCounts,
    types,
    loading,
    error,
    loadedAt,
    sortSupported,
    bulk,
    ready: load(),
    reload: load,
    act,
    runBulk,
    clearBulk() {
      clearTimeout(bulkPoll)
      bulk.value = null
    },
    async cleanup(daysOld: number) {
      const deleted = await options.api.cleanup(daysOld)
      await load()
      return deleted
    },
    dispose,
  }
}
