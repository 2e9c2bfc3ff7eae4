import { v4 as uuidv4 } from 'uuid'
import type { JobStatus } from '../core/contract.js'
import { JOB_POST_TYPE, META, queueOrder } from '../core/registry/jobRecord.js'
import type { NewPost, PostStore } from '../core/store/PostStore.js'

export interface SeedJob {
  status: JobStatus
  /** completed_at (and started_at) of finished jobs; also created_at. */
  at: string
  type?: string
}

/**
 * The post a job of `status` has after a normal life (the meta rows RegisterJobs writes), so that
 * seeded databases hold the same rows per job as real ones.
 */
export function jobPost(job: SeedJob): NewPost {
  const jobId = uuidv4()
  const type = job.type ?? 'bench-noop'
  const meta: Record<string, string> = {
    [META.jobId]: jobId,
    [META.name]: `Bench ${type}`,
    [META.description]: '',
    [META.type]: type,
    [META.status]: job.status,
    [META.progress]: job.status === 'completed' ? '100' : '0',
    [META.metadata]: '{}',
    [META.showNotification]: '1',
    [META.priority]: '0',
    [META.attempts]: job.status === 'pending' ? '0' : '1',
    [META.maxAttempts]: '3',
    [META.runAt]: job.at,
    [META.data]: '{"n":1}',
    [META.queued]: '1',
  }
  switch (job.status) {
    case 'pending':
      meta[META.queueOrder] = queueOrder(0, job.at)
      break
    case 'running':
      meta[META.startedAt] = job.at
      meta[META.attemptToken] = uuidv4()
      // A lease far ahead: these belong to a (pretend) live worker.
      meta[META.lockedUntil] = '2999-01-01T00:00:00.000Z'
      break
    default:
      meta[META.startedAt] = job.at
      meta[META.completedAt] = job.at
      meta[META.result] = '{"ok":true}'
  }
  return { postType: JOB_POST_TYPE, title: meta[META.name]!, slug: jobId, createdAt: job.at, meta, authorId: null }
}

/** Inserts jobs through the store, `chunk` per transaction; `make(i)` describes the i-th job. */
export async function seedJobs(store: PostStore, count: number, make: (i: number) => SeedJob, chunk = 5000): Promise<void> {
  for (let i = 0; i < count; i += chunk) {
    const posts = Array.from({ length: Math.min(chunk, count - i) }, (_, n) => jobPost(make(i + n)))
    await store.transaction((trx) => trx.createPosts(posts))
  }
}
