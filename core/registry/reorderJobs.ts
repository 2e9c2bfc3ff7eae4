import { JobpostError } from '../errors.js'
import type { JobState } from '../store/jobs/JobStore.js'

/**
 * Reordering pending jobs (POST /api/v1/jobs/reorder): the listed jobs are claimed in exactly the
 * listed order relative to each other.
 *
 * How: queue order is (priority DESC, runAt, id) (queueOrder.ts). Every listed job takes the
 * highest priority among them, P, and the i-th of n takes runAt = R - n + i, where R is the
 * earliest runAt among them. So
 * - their runAts are distinct and increasing in the listed order: the order holds whatever their
 *   ids, and each next one queues right behind the one before it;
 * - every runAt only moves earlier (never later than the job's own), so a due job stays due;
 * - all of them end strictly before R: when the list is the head of a type's queue (what the
 *   admin sends: the jobs from the top down to the lowest one moved), no job outside the list
 *   that was behind them gets ahead of any of them (its priority is at most P and, when equal,
 *   its runAt is at least R).
 *
 * Delayed jobs (runAt in the future) are refused with 409: reordering them would either make them
 * due early (a silent run-now) or leave them out of the order they were put in. Run them now
 * first (POST /jobs/:jobId/run-now), then reorder. A delayed job whose time has come (no worker
 * promoted it yet) is due, and the reorder promotes it. Tracked jobs (no processor claims them)
 * are refused too: no queue holds them.
 */

export const MAX_REORDER_JOBS = 500

export interface ReorderPlan {
  priority: number
  /** runAt (ms) of each listed job, in the listed order. */
  runAts: number[]
}

/** Why a job cannot be reordered, or null when it can. */
export function reorderRefusal(state: Pick<JobState, 'status' | 'queued' | 'runAt'>, now: number): string | null {
  if (state.status !== 'pending') return `it is ${state.status}; only pending jobs can be reordered`
  if (!state.queued) return 'it is driven by its plugin (no processor claims it), so it has no place in a queue'
  if (state.runAt > now) {
    return `it is scheduled for ${new Date(state.runAt).toISOString()}; make it due with run-now before reordering it`
  }
  return null
}

/** New priority and runAts for jobs listed in their wanted order (see above). */
export function planReorder(jobs: readonly Pick<JobState, 'priority' | 'runAt'>[]): ReorderPlan {
  if (jobs.length === 0) return { priority: 0, runAts: [] }
  const priority = Math.max(...jobs.map((job) => job.priority))
  const earliest = Math.min(...jobs.map((job) => job.runAt))
  return { priority, runAts: jobs.map((_, i) => earliest - jobs.length + i) }
}

/** 409: a listed job cannot be reordered; nothing was changed. */
export class ReorderRefusedError extends JobpostError {
  constructor(
    readonly jobId: string,
    reason: string,
  ) {
    super('ILLEGAL_TRANSITION', `Job ${jobId} cannot be reordered: ${reason}. Nothing was changed.`, 409)
  }
}
