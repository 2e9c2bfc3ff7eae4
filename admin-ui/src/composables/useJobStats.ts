import { computed, getCurrentScope, onScopeDispose, shallowRef } from 'vue'
import type { ApiClient } from '../api/client'
import { ACTIVE_STATUSES, isFinalStatus, type JobStats } from '../contract'
import type { JobsSocket } from './useJobsSocket'

export interface JobStatsOptions {
  api: Pick<ApiClient, 'stats'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** Batches reloads after a burst of status changes (default 100 ms). */
  reloadDelayMs?: number
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

  async function load() {
    try {
      const next = await options.api.stats()
      if (!disposed) stats.value = next
    } catch {
      // Keep the last counts; the next change tries again.
    }
  }
  function reloadSoon() {
    if (disposed) return
    clearTimeout(timer)
    timer = setTimeout(() => void load(), options.reloadDelayMs ?? 100)
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
