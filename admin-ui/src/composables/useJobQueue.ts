import { computed, getCurrentScope, onScopeDispose, shallowRef, triggerRef } from 'vue'
import type { ApiClient } from '../api/client'
import { ACTIVE_STATUSES, isFinalStatus, type Job } from '../contract'
import { isNewer, newestFirst } from '../lib/jobs'
import type { JobsSocket } from './useJobsSocket'

export interface JobQueueOptions {
  api: Pick<ApiClient, 'listJobs' | 'getJob'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** How long a completed card stays before it leaves (default 5000 ms). */
  completedTtlMs?: number
  /** At most this many cards are fetched at start (default 50). */
  initialLimit?: number
}

/** Statuses whose card the user may close. */
export function isDismissable(job: Job): boolean {
  return isFinalStatus(job.status)
}

/**
 * The state of the bottom-right notification stack: one card per job with `showNotification`,
 * newest first. Active jobs are fetched at start and again after every (re)connection, and every
 * card that is not final is re-read then, so that a dropped connection never strands a card in a
 * state the job has left. Completed cards leave after `completedTtlMs`; final cards can be dismissed.
 */
export function useJobQueue(options: JobQueueOptions) {
  const ttl = options.completedTtlMs ?? 5000
  const cards = shallowRef(new Map<string, Job>())
  const removalTimers = new Map<string, ReturnType<typeof setTimeout>>()
  /** Jobs the user closed: later updates do not bring them back unless they become active again. */
  const dismissed = new Set<string>()
  const loadError = shallowRef<string | null>(null)
  let disposed = false

  function scheduleRemoval(job: Job) {
    if (job.status !== 'completed') {
      clearTimeout(removalTimers.get(job.jobId))
      removalTimers.delete(job.jobId)
      return
    }
    if (removalTimers.has(job.jobId)) return
    removalTimers.set(
      job.jobId,
      setTimeout(() => {
        removalTimers.delete(job.jobId)
        remove(job.jobId)
      }, ttl),
    )
  }

  function remove(jobId: string) {
    clearTimeout(removalTimers.get(jobId))
    removalTimers.delete(jobId)
    if (cards.value.delete(jobId)) triggerRef(cards)
  }

  /** Applies a job's state if it is not older than the card's. */
  function upsert(job: Job) {
    if (disposed || !job.showNotification) return
    if (dismissed.has(job.jobId)) {
      if (isFinalStatus(job.status)) return
      dismissed.delete(job.jobId)
    }
    const current = cards.value.get(job.jobId)
    if (current && !isNewer(job, current)) return
    cards.value.set(job.jobId, job)
    triggerRef(cards)
    scheduleRemoval(job)
  }

  async function sync() {
    try {
      const { jobs } = await options.api.listJobs({ status: ACTIVE_STATUSES, limit: options.initialLimit ?? 50 })
      const seen = new Set(jobs.map((job) => job.jobId))
      for (const job of jobs) upsert(job)
      // Cards still shown as active that the list no longer has: read them, they have moved on.
      const stale = [...cards.value.values()].filter((job) => !isFinalStatus(job.status) && !seen.has(job.jobId))
      await Promise.all(
        stale.map(async (job) => {
          try {
            upsert(await options.api.getJob(job.jobId))
          } catch (error) {
            if ((error as { status?: number }).status === 404) remove(job.jobId)
          }
        }),
      )
      loadError.value = null
    } catch (error) {
      loadError.value = error instanceof Error ? error.message : String(error)
    }
  }

  const unsubscribe = options.socket.subscribe((message) => {
    switch (message.type) {
      case 'connected':
        void sync()
        return
      case 'job_update':
        upsert(message.job)
        return
      case 'job_deleted':
        dismissed.delete(message.jobId)
        remove(message.jobId)
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

  function dispose() {
    disposed = true
    unsubscribe()
    for (const timer of removalTimers.values()) clearTimeout(timer)
    removalTimers.clear()
  }
  if (getCurrentScope()) onScopeDispose(dispose)

  // The first fetch does not wait for the socket: jobs already running show at once.
  const ready = sync()

  return {
    cards: computed(() => [...cards.value.values()].sort(newestFirst)),
    loadError,
    ready,
    dismiss(jobId: string) {
      const job = cards.value.get(jobId)
      if (!job || !isDismissable(job)) return
      dismissed.add(jobId)
      remove(jobId)
    },
    dispose,
  }
}
