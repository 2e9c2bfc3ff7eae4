import type { Request } from 'express'
import type { PublicUser } from '../contract.js'
import { canSeeAllJobs } from '../auth/capabilities.js'
import { JobNotFoundError, ValidationError } from '../errors.js'
import type { JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'

/** A job id as the routes accept it: a UUID. */
export const JOB_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Users without read_jobs (or manage_jobs) see only the jobs they created. */
export function canSeeJob(user: PublicUser, job: { createdBy: number | null }): boolean {
  return canSeeAllJobs(user) || job.createdBy === user.id
}

/**
 * The job of `req.params.jobId` if the caller may see it; 404 JOB_NOT_FOUND otherwise, so that
 * unknown and invisible jobs look the same (ids of other users' jobs do not leak). One rule for
 * every route under /api/v1/jobs/:jobId and the notification dismissals.
 */
export async function visibleJob(jobs: RegisterJobs, req: Request): Promise<JobRecord> {
  const jobId = String(req.params.jobId)
  if (!JOB_ID_PATTERN.test(jobId)) throw new ValidationError('jobId must be a UUID.')
  const record = await jobs.getJobRecord(jobId)
  if (!record || !canSeeJob(req.user!, record)) throw new JobNotFoundError(jobId)
  return record
}
