import { computed, getCurrentScope, onScopeDispose, reactive, shallowRef, watch } from 'vue'
import type { ApiClient, JobAction } from '../api/client'
import { JOB_STATUSES, type Job, type JobStats, type JobStatus } from '../contract'
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

export interface JobsOptions {
  api: Pick<ApiClient, 'listJobs' | 'stats' | 'jobAction' | 'deleteJob' | 'cleanup'>
  socket: Pick<JobsSocket, 'subscribe'>
  pageSize?: number
  /** Batches list and stats reloads after a burst of updates (default 250 ms). */
  reloadDelayMs?: number
  initialTab?: JobTabId
}

export function isJobTabId(value: unknown): value is JobTabId {
  return JOB_TABS.some((tab) => tab.id === value)
}

export interface BulkResult {
  done: number
  failed: { jobId: string; message: string }[]
}

/**
 * The jobs page's state: a tab (set of statuses), search, type and source filters, a server-side
 * page, the counts per status, and live updates from the socket. A job on the page is updated in
 * place; a change that may move jobs between pages or tabs (a new job, a status change, a delete)
 * reloads the page and the counts once the burst is over. No polling.
 */
export function useJobs(options: JobsOptions) {
  const pageSize = options.pageSize ?? 20
  const filters = reactive({ tab: options.initialTab ?? ('active' as JobTabId), search: '', type: '', source: '' })
  const offset = shallowRef(0)
  const jobs = shallowRef<Job[]>([])
  const total = shallowRef(0)
  const stats = shallowRef<JobStats | null>(null)
  const loading = shallowRef(false)
  const error = shallowRef<string | null>(null)
  let reloadTimer: ReturnType<typeof setTimeout> | undefined
  let requestSeq = 0
  let disposed = false

  const tab = computed(() => JOB_TABS.find((t) => t.id === filters.tab) ?? JOB_TABS[0])
  const tabCounts = computed(() =>
    Object.fromEntries(
      JOB_TABS.map((t) => [t.id, stats.value ? t.statuses.reduce((sum, s) => sum + (stats.value!.byStatus[s] ?? 0), 0) : null]),
    ) as Record<JobTabId, number | null>,
  )
  const types = computed(() => Object.keys(stats.value?.byType ?? {}).sort())

  async function load() {
    const seq = ++requestSeq
    loading.value = true
    try {
      const [list, counts] = await Promise.all([
        options.api.listJobs({
          status: tab.value.statuses,
          search: filters.search.trim() || undefined,
          type: filters.type || undefined,
          source: filters.source.trim() || undefined,
          limit: pageSize,
          offset: offset.value,
        }),
        options.api.stats(),
      ])
      if (seq !== requestSeq || disposed) return
      // The page emptied under us (deletes, a tab change elsewhere): step back to the last page.
      if (list.jobs.length === 0 && offset.value > 0 && list.meta.total > 0) {
        offset.value = Math.max(0, Math.floor((list.meta.total - 1) / pageSize) * pageSize)
        return load()
      }
      jobs.value = list.jobs
      total.value = list.meta.total
      stats.value = counts
      error.value = null
    } catch (e) {
      if (seq === requestSeq) error.value = e instanceof Error ? e.message : String(e)
    } finally {
      if (seq === requestSeq) loading.value = false
    }
  }

  function reloadSoon() {
    if (disposed) return
    clearTimeout(reloadTimer)
    reloadTimer = setTimeout(() => void load(), options.reloadDelayMs ?? 250)
  }

  const unsubscribe = options.socket.subscribe((message) => {
    switch (message.type) {
      case 'connected':
        // After a reconnect, anything may have happened: reload.
        reloadSoon()
        return
      case 'job_update': {
        const index = jobs.value.findIndex((job) => job.jobId === message.job.jobId)
        const current = jobs.value[index]
        if (current) {
          if (!isNewer(message.job, current)) return
          const next = [...jobs.value]
          next[index] = message.job
          jobs.value = next
          if (current.status !== message.job.status) reloadSoon()
        } else {
          reloadSoon()
        }
        return
      }
      case 'job_deleted':
        reloadSoon()
        return
      case 'pong':
      case 'error':
        return
      default: {
        const never: never = message
        return never
      }
    }
  })

  // Filters go back to the first page; the search box is debounced by its caller.
  watch(
    () => [filters.tab, filters.search, filters.type, filters.source],
    () => {
      offset.value = 0
      void load()
    },
  )
  watch(offset, () => void load())

  function dispose() {
    disposed = true
    clearTimeout(reloadTimer)
    unsubscribe()
  }
  if (getCurrentScope()) onScopeDispose(dispose)

  async function act(jobIds: string[], action: JobAction | 'delete'): Promise<BulkResult> {
    const results = await Promise.allSettled(
      jobIds.map((jobId) => (action === 'delete' ? options.api.deleteJob(jobId) : options.api.jobAction(jobId, action))),
    )
    const failed = results.flatMap((result, i) =>
      result.status === 'rejected'
        ? [{ jobId: jobIds[i]!, message: result.reason instanceof Error ? result.reason.message : String(result.reason) }]
        : [],
    )
    await load()
    return { done: results.length - failed.length, failed }
  }

  return {
    filters,
    offset,
    pageSize,
    jobs,
    total,
    stats,
    tabCounts,
    types,
    loading,
    error,
    ready: load(),
    reload: load,
    act,
    async cleanup(daysOld: number) {
      const deleted = await options.api.cleanup(daysOld)
      await load()
      return deleted
    },
    nextPage() {
      if (offset.value + pageSize < total.value) offset.value += pageSize
    },
    previousPage() {
      offset.value = Math.max(0, offset.value - pageSize)
    },
    dispose,
  }
}
