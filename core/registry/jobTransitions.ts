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

/** `previous` means: the status the job had before it was paused (kept in meta `paused_from`). */
type Target = JobStatus | 'previous'

const TRANSITIONS: Record<JobAction, Partial<Record<JobStatus, Target>>> = {
  start: { pending: 'running' },
  progress: { running: 'running', paused: 'paused' },
  complete: { running: 'completed', paused: 'completed' },
  completeWithErrors: { running: 'completed_with_errors', paused: 'completed_with_errors' },
  fail: { pending: 'failed', running: 'failed', paused: 'failed' },
  cancel: { pending: 'cancelled', running: 'cancelled', paused: 'cancelled' },
  pause: { pending: 'paused', running: 'paused' },
  resume: { paused: 'previous' },
  // A paused job whose attempt fails stays paused; it will wait in `pending` once resumed.
  requeue: { running: 'pending', paused: 'paused' },
  retry: { failed: 'pending', cancelled: 'pending', completed_with_errors: 'pending' },
}

/** The status after `action`, or IllegalTransitionError. */
export function nextStatus(action: JobAction, from: JobStatus, pausedFrom: JobStatus | null): JobStatus {
  const target = TRANSITIONS[action][from]
  if (target === undefined) throw new IllegalTransitionError(actionVerb(action), from)
  if (target === 'previous') return pausedFrom === 'running' ? 'running' : 'pending'
  return target
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
