import type { Jobpost } from '../../../core/createJobpost.js'
import type { JobRecord } from '../../../core/registry/jobRecord.js'

/** Everything stored about a job, for "nothing changed" assertions. */
export async function snapshot(jobpost: Jobpost, jobId: string): Promise<JobRecord> {
  const record = await jobpost.jobs.getJobRecord(jobId)
  if (!record) throw new Error(`job ${jobId} is gone`)
  return record
}

/** Number of jobs stored (any status, any creator). */
export async function jobCount(jobpost: Jobpost): Promise<number> {
  return (await jobpost.jobs.stats()).total
}

/** Asserts a response is the contract's error envelope with the status, and no server error. */
export function errorEnvelope(res: { status: number; body: any; headers: Record<string, string> }) {
  return {
    status: res.status,
    success: res.body?.success,
    code: res.body?.error?.code,
    json: /application\/json/.test(res.headers['content-type'] ?? ''),
  }
}
