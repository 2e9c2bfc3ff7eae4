import { v4 as uuidv4 } from 'uuid'
import type { JobStatus } from '../core/contract.js'
import { ownerScope } from '../core/store/jobs/jobSql.js'
import type { JobStore, NewJob } from '../core/store/jobs/JobStore.js'

export interface SeedJob {
  status: JobStatus
  /** completed_at (and started_at) of finished jobs; also created_at. */
  at: string
  type?: string
  createdBy?: number | null
}

/**
 * A job of `status` as it is stored after a normal life (typed row + the meta RegisterJobs
 * writes), so that seeded databases hold the same rows per job as real ones.
 */
export function seedJob(job: SeedJob): NewJob {
  const at = Date.parse(job.at)
  const type = job.type ?? 'bench-noop'
  const finished = job.status !== 'pending' && job.status !== 'running' && job.status !== 'paused'
  const meta: Record<string, string> = { data: '{"n":1}' }
  if (finished) meta.result = '{"ok":true}'
  return {
    jobId: uuidv4(),
    name: `Bench ${type}`,
    meta,
    state: {
      type,
      status: job.status,
      queued: true,
      delayed: false,
      priority: 0,
      runAt: at,
      attempts: job.status === 'pending' ? 0 : 1,
      maxAttempts: 3,
      // Running jobs hold a lease far ahead: they belong to a (pretend) live worker.
      attemptToken: job.status === 'running' ? uuidv4() : null,
      lockedUntil: job.status === 'running' ? Date.parse('2999-01-01T00:00:00.000Z') : null,
      progress: job.status === 'completed' ? 100 : 0,
      timeoutMs: null,
      showNotification: true,
      createdBy: job.createdBy ?? null,
      owner: ownerScope(job.createdBy, null),
      source: null,
      parentJobId: null,
      pausedFrom: job.status === 'paused' ? 'pending' : null,
      createdAt: at,
      updatedAt: at,
      startedAt: job.status === 'pending' || job.status === 'paused' ? null : at,
      completedAt: finished ? at : null,
    },
  }
}

/** Inserts jobs through the job store, `chunk` per transaction; `make(i)` describes the i-th job. */
export async function seedJobs(store: JobStore, count: number, make: (i: number) => SeedJob, chunk = 5000): Promise<void> {
  for (let i = 0; i < count; i += chunk) {
    await store.insert(Array.from({ length: Math.min(chunk, count - i) }, (_, n) => seedJob(make(i + n))))
  }
}
