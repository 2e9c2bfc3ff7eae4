import type { JobStatus } from '../contract.js'
import { IllegalTransitionError } from '../errors.js'

/**
 * Everything that may happen to a job. The table below is the one place that decides what is
 * legal; every write of a status goes through `nextStatus`.
 */
export type JobAction =
  | 'start' // a worker or plugin begins an attempt
  | 'progress' // progress/metadata while an attempt is under way
  | 'complete'
  | 'completeWithErrors' // a batch finished and some items failed
  | 'fail'
  | 'cancel'
  | 'pause'
  | 'resume'
  | 'requeue' // an attempt failed (or its lease expired) with attempts left
  | 'retry' // a person or plugin asks a finished job to run again

/**
 * Who moves a job (see README, "Job lifecycle"): the runtime (claim → running, settles of its
 * attempt), a plugin's handle (start and the settles of a tracked job), people and plugins
 * (cancel, pause, resume, retry) and recovery (an expired lease). Every move out of `running` that
 * an attempt makes (progress, complete, fail, requeue) is written with the attempt's token in the
 * statement's WHERE, so it only lands while the job is still `running` with that token; cancel,
 * pause, release (requeue) and retry retire the token.
 */
const TRANSITIONS: Record<JobAction, Partial<Record<JobStatus, JobStatus>>> = {
  start: { pending: 'running' },
  progress: { running: 'running' },
  complete: { running: 'completed' },
  completeWithErrors: { running: 'completed_with_errors' },
  // A pending tracked job may be failed by its plugin before it starts.
  fail: { pending: 'failed', running: 'failed' },
  cancel: { pending: 'cancelled', running: 'cancelled', paused: 'cancelled' },
  // Pausing a running job aborts its attempt (not counted); `paused` means no code of it runs.
  pause: { pending: 'paused', running: 'paused' },
  // A resumed job waits to run again from the start (a processor may continue from its checkpoint).
  resume: { paused: 'pending' },
  requeue: { running: 'pending' },
  retry: { failed: 'pending', cancelled: 'pending', completed_with_errors: 'pending' },
}

/** The status after `action`, or IllegalTransitionError. */
export function nextStatus(action: JobAction, from: JobStatus, _pausedFrom?: JobStatus | null): JobStatus {
  const target = TRANSITIONS[action][from]
  if (target === undefined) throw new IllegalTransitionError(actionVerb(action), from)
  return target
}

/** The statuses `action` may move a job from (for fences written without a read). */
export function statusesAllowing(action: JobAction): JobStatus[] {
  return Object.keys(TRANSITIONS[action]) as JobStatus[]
}

function actionVerb(action: JobAction): string {
  switch (action) {
    case 'start':
      return 'start'
    case 'progress':
      return 'report progress on'
    case 'complete':
    case 'completeWithErrors':
      return 'complete'
    case 'fail':
      return 'fail'
    case 'cancel':
      return 'cancel'
    case 'pause':
      return 'pause'
    case 'resume':
      return 'resume'
    case 'requeue':
      return 'requeue'
    case 'retry':
      return 'retry'
    default: {
      const exhaustive: never = action
      return exhaustive
    }
  }
}
