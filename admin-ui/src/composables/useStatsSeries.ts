import { getCurrentScope, onScopeDispose, shallowRef } from 'vue'
import { errorText, isMissingRoute, type ApiClient } from '../api/client'
import type { StatsSeriesPoint } from '../contract'
import type { JobsSocket } from './useJobsSocket'

export interface StatsSeriesOptions {
  api: Pick<ApiClient, 'statsSeries'>
  socket: Pick<JobsSocket, 'subscribe'>
  minutes?: number
  /** Read again this often, and after job changes no more often than this (default 5000 ms). */
  refreshMs?: number
}

/**
 * Created, completed and failed jobs per minute (GET /api/v1/jobs/stats/series), live: read again
 * after job changes (at most every `refreshMs`), every `refreshMs` anyway so the minutes move on,
 * and after a reconnect. `available` turns false on a server without the route.
 */
export function useStatsSeries(options: StatsSeriesOptions) {
  const refreshMs = options.refreshMs ?? 5000
  const points = shallowRef<StatsSeriesPoint[] | null>(null)
  const available = shallowRef(true)
  const error = shallowRef<string | null>(null)
  let timer: ReturnType<typeof setTimeout> | undefined
  let disposed = false
  let changed = false

  async function load() {
    clearTimeout(timer)
    timer = undefined
    changed = false
    try {
      points.value = await options.api.statsSeries(options.minutes ?? 60)
      error.value = null
    } catch (e) {
      if (isMissingRoute(e)) {
        available.value = false
        return
      }
      error.value = errorText(e)
    }
    if (!disposed) timer = setTimeout(() => void load(), refreshMs)
  }

  const unsubscribe = options.socket.subscribe((message) => {
    if (!available.value) return
    if (message.type === 'connected') return void load()
    if (message.type === 'job_update' && !changed) {
      // The next scheduled read comes within refreshMs; make it sooner only the first time.
      changed = true
      if (timer !== undefined) {
        clearTimeout(timer)
        timer = setTimeout(() => void load(), Math.min(refreshMs, 1000))
      }
    }
  })

  function dispose() {
    disposed = true
    clearTimeout(timer)
    unsubscribe()
  }
  if (getCurrentScope()) onScopeDispose(dispose)
  void load()
  return { points, available, error, reload: load }
}
