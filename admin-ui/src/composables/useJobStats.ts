import { computed, getCurrentScope, onScopeDispose, shallowRef } from 'vue'
import type { ApiClient } from '../api/client'
import { ACTIVE_STATUSES, isFinalStatus, type JobStats } from '../contract'
import type { JobsSocket } from './useJobsSocket'

export interface JobStatsOptions {
  api: Pick<ApiClient, 'stats'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** Batches reloads after a burst of status changes (default 100 ms). */
  reloadDelayMs?: number
  /** During a burst, at most one reload this often (default 1000 ms). */
  minIntervalMs?: number
}

/**
 * GET /api/v1/jobs/stats, kept current by the socket: reloaded when a job changes status, is
 * deleted, or after a reconnect (progress updates alone do not reload). No polling.
 */
export function useJobStats(options: JobStatsOptions) {
  const stats = shallowRef<JobStats | null>(null)
  /** Last known status per job, to tell progress (no reload) from status changes (reload). */
  const known = new Map<string, string>()
  let timer: ReturnType<typeof setTimeout> | undefined
  let disposed = false
  let lastLoad = 0

  async function load() {
    lastLoad = Date.now()
    timer = undefined
    try {
      const next = await options.api.stats()
      if (!disposed) stats.value = next
    } catch {
      // Keep the last counts; the next change tries again.
    }
  }
  /** One reload after the changes settle, and no more than one per `minIntervalMs` while they go on. */
  function reloadSoon() {
    if (disposed || timer !== undefined) return
    const wait = Math.max(options.reloadDelayMs ?? 100, lastLoad + (options.minIntervalMs ?? 1000) - Date.now())
    timer = setTimeout(() => void load(), wait)
  }

  const unsubscribe = options.socket.subscribe((message) => {
    if (message.type === 'connected' || message.type === 'job_deleted') return reloadSoon()
    if (message.type !== 'job_update') return
    const { jobId, status } = message.job
    if (known.get(jobId) !== status) reloadSoon()
    if (isFinalStatus(status)) known.delete(jobId)
    else known.set(jobId, status)
  })
  if (getCurrentScope()) {
    onScopeDispose(() => {
      disposed = true
      clearTimeout(timer)
      unsubscribe()
    })
  }
  void load()
  return {
    stats,
    /** pending + running + paused */
    activeCount: computed(() =>
      stats.value ? ACTIVE_STATUSES.reduce((sum, status) => sum + (stats.value!.byStatus[status] ?? 0), 0) : null,
    ),
  }
}
