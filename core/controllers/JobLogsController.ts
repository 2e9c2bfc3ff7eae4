import type { Request, Router } from 'express'
import { z } from 'zod'
import { JobNotFoundError, ValidationError } from '../errors.js'
import { parseOrThrow } from '../registry/jobInput.js'
import type { JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import type { JobLogs } from '../logs/index.js'
import { canSeeJob } from './JobsController.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const MAX_LOG_PAGE = 1000
export const DEFAULT_LOG_PAGE = 200

const integerParam = (name: string, min: number, max: number) =>
  z
    .string({ error: `${name} must be given once` })
    .max(16, `${name} must be an integer from ${min} to ${max}`)
    .regex(/^\d+$/, `${name} must be an integer from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => Number.isSafeInteger(n) && n >= min && n <= max, `${name} must be an integer from ${min} to ${max}`)

const logsQuerySchema = z.strictObject({
  after: integerParam('after', 0, Number.MAX_SAFE_INTEGER).optional(),
  limit: integerParam('limit', 1, MAX_LOG_PAGE).optional(),
})

/**
 * GET /api/v1/jobs/:jobId/logs and /attempts (issue 15), on the jobs router (after its
 * authentication), with the visibility of GET /jobs/:jobId: a job the caller may not see is 404
 * JOB_NOT_FOUND, like an unknown one.
 */
export function mountJobLogRoutes(router: Router, options: { jobs: RegisterJobs; logs: JobLogs }): void {
  const { jobs, logs } = options

  async function visibleJob(req: Request): Promise<JobRecord> {
    const jobId = String(req.params.jobId)
    if (!UUID.test(jobId)) throw new ValidationError('jobId must be a UUID.')
    const record = await jobs.getJobRecord(jobId)
    if (!record || !canSeeJob(req.user!, record)) throw new JobNotFoundError(jobId)
    return record
  }

  router.get('/:jobId/logs', async (req, res) => {
    const query = parseOrThrow(logsQuerySchema, req.query)
    const record = await visibleJob(req)
    const after = query.after ?? 0
    const limit = query.limit ?? DEFAULT_LOG_PAGE
    const page = await logs.readLogs(record.id, after, limit)
    const next = page.lines.length ? page.lines[page.lines.length - 1]!.seq : after
    res.status(200).json({
      success: true,
      data: page.lines,
      // `next`: pass as `after` for the next page; `lastSeq`: the newest line's seq; `dropped`:
      // lines the job no longer has (its 10,000-line cap) or never wrote (too many waiting).
      meta: { next, limit, after, lastSeq: page.lastSeq, dropped: page.dropped, hasMore: page.lastSeq > next },
    })
  })

  router.get('/:jobId/attempts', async (req, res) => {
    parseOrThrow(z.strictObject({}), req.query)
    const record = await visibleJob(req)
    res.status(200).json({ success: true, data: await logs.attempts(record.id) })
  })
}
