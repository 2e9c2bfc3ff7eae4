import { getCurrentScope, onScopeDispose, ref, shallowRef, watch, type Ref } from 'vue'
import { compareQueueOrder } from '../../../core/registry/queueOrder'
import { errorText, type ApiClient } from '../api/client'
import type { Job } from '../contract'
import type { JobsSocket } from './useJobsSocket'

export interface QueueOptions {
  api: Pick<ApiClient, 'queue' | 'reorderJobs'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** The job type whose queue is shown (the runtime keeps one queue per type). */
  type: Readonly<Ref<string>>
  /** How many of the queue's head are shown and can be reordered (default 100, at most 500). */
  limit?: number
  /** After live changes, the list is re-read from the server this long after they settle (default 500 ms). */
  refreshDelayMs?: number
  /** Time source (tests). */
  now?: () => number
}

/**
 * The Queue view's state: the head of a type's queue in the order the runtime claims it (the
 * server's GET /jobs/queue, and the same comparator, core/registry/queueOrder.ts, for jobs that
 * arrive over the socket), the delayed jobs apart, and moves through POST /jobs/reorder.
 *
 * A move is shown at once and sent as the head of the queue down to the lowest position it
 * touches (so the jobs below keep their place behind it); when the server refuses (a job started
 * meanwhile...), the list is re-read and the error kept for the page. Other users' reorders and
 * new jobs arrive as job_updates and are placed by queue order; a re-read after they settle
 * keeps the list exact.
 */
export function useQueue(options: QueueOptions) {
  const limit = options.limit ?? 100
  const now = options.now ?? (() => Date.now())
  const jobs = shallowRef<Job[]>([])
  const delayed = shallowRef<Job[]>([])
  const total = ref(0)
  const delayedTotal = ref(0)
  const loading = ref(false)
  const saving = ref(false)
  const error = ref<string | null>(null)
  let disposed = false
  let generation = 0
  let refreshTimer: ReturnType<typeof setTimeout> | undefined

  async function load() {
    const type = options.type.value
    const mine = ++generation
    clearTimeout(refreshTimer)
    refreshTimer = undefined
    if (!type) {
      jobs.value = []
      delayed.value = []
      total.value = delayedTotal.value = 0
      return
    }
    loading.value = true
    try {
      const [due, later] = await Promise.all([options.api.queue({ type, limit }), options.api.queue({ type, delayed: true, limit })])
      if (disposed || mine !== generation) return
      jobs.value = due.jobs
      total.value = due.total
      delayed.value = later.jobs
      delayedTotal.value = later.total
      error.value = null
    } catch (e) {
      if (!disposed && mine === generation) error.value = errorText(e)
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  /** A re-read once live changes settle (never while a move is on its way). */
  function refreshSoon() {
    if (disposed) return
    clearTimeout(refreshTimer)
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined
      if (saving.value) refreshSoon()
      else void load()
    }, options.refreshDelayMs ?? 500)
  }

  /**
   * Moves a job to `toIndex` (0 = the top) and saves the new order. Resolves true when the server
   * took it; false (with `error` set, and the list re-read) when it refused.
   */
  async function move(jobId: string, toIndex: number): Promise<boolean> {
    const from = jobs.value.findIndex((job) => job.jobId === jobId)
    const to = Math.max(0, Math.min(jobs.value.length - 1, toIndex))
    if (from < 0 || from === to || saving.value) return from >= 0 && from === to
    const order = [...jobs.value]
    const [job] = order.splice(from, 1)
    order.splice(to, 0, job!)
    jobs.value = order
    saving.value = true
    error.value = null
    // The head of the queue down to the lowest position touched: the jobs below stay behind it.
    const head = order.slice(0, Math.max(from, to) + 1).map((j) => j.jobId)
    try {
      const moved = await options.api.reorderJobs(head)
      if (disposed) return true
      const byId = new Map(moved.map((m) => [m.jobId, m]))
      jobs.value = jobs.value.map((j) => byId.get(j.jobId) ?? j).sort(compareQueueOrder)
      return true
    } catch (e) {
      if (disposed) return false
      error.value = errorText(e)
      await load()
      return false
    } finally {
      saving.value = false
    }
  }

  /** A job_update of this type: placed, moved or dropped by queue order, then a re-read. */
  function apply(job: Job) {
    const inDue = jobs.value.some((j) => j.jobId === job.jobId)
    const inDelayed = delayed.value.some((j) => j.jobId === job.jobId)
    if (job.status !== 'pending') {
      if (inDue) jobs.value = jobs.value.filter((j) => j.jobId !== job.jobId)
      if (inDelayed) delayed.value = delayed.value.filter((j) => j.jobId !== job.jobId)
      if (!inDue && !inDelayed) return
    } else if (Date.parse(job.runAt) > now()) {
      delayed.value = [...delayed.value.filter((j) => j.jobId !== job.jobId), job].sort((a, b) => Date.parse(a.runAt) - Date.parse(b.runAt) || a.id - b.id)
      if (inDue) jobs.value = jobs.value.filter((j) => j.jobId !== job.jobId)
    } else {
      const next = [...jobs.value.filter((j) => j.jobId !== job.jobId), job].sort(compareQueueOrder)
      // Beyond the head shown, a job is only counted (the re-read brings it when it moves up).
      jobs.value = next.length > limit ? next.slice(0, limit) : next
      if (inDelayed) delayed.value = delayed.value.filter((j) => j.jobId !== job.jobId)
    }
    refreshSoon()
  }

  const unsubscribe = options.socket.subscribe((message, event) => {
    if (message.type === 'connected') {
      if (event?.reconnect) void load()
      return
    }
    if (message.type === 'job_deleted') {
      if (jobs.value.some((j) => j.jobId === message.jobId)) refreshSoon()
      return
    }
    if (message.type !== 'job_update' || message.job.type !== options.type.value) return
    apply(message.job)
  })

  watch(options.type, () => void load(), { immediate: true })
  if (getCurrentScope()) {
    onScopeDispose(() => {
      disposed = true
      clearTimeout(refreshTimer)
      unsubscribe()
    })
  }

  return { jobs, delayed, total, delayedTotal, loading, saving, error, load, move }
}
