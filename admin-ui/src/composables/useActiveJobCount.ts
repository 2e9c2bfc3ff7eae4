import { getCurrentScope, onScopeDispose, shallowRef } from 'vue'
import type { ApiClient } from '../api/client'
import { ACTIVE_STATUSES, isFinalStatus } from '../contract'
import type { JobsSocket } from './useJobsSocket'

export interface ActiveJobCountOptions {
  api: Pick<ApiClient, 'stats'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** Batches reloads after a burst of status changes (default 100 ms). */
  reloadDelayMs?: number
}

/** The number of active jobs (pending + running + paused) the user can see, kept current by the socket. */
export function useActiveJobCount(options: ActiveJobCountOptions) {
  const count = shallowRef<number | null>(null)
  /** Last known status per job, to tell progress (no reload) from status changes (reload). */
  const known = new Map<string, string>()
  let timer: ReturnType<typeof setTimeout> | undefined

  async function load() {
    try {
      const stats = await options.api.stats()
      count.value = ACTIVE_STATUSES.reduce((sum, status) => sum + (stats.byStatus[status] ?? 0), 0)
    } catch {
      // Keep the last count; the next change tries again.
    }
  }
  function reloadSoon() {
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
      clearTimeout(timer)
      unsubscribe()
    })
  }
  void load()
  return { count }
}
