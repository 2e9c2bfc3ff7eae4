import { z } from 'zod'
import { BULK_ACTIONS, JOB_STATUSES, type BulkAction, type BulkOutcome, type Job, type PublicUser } from '../contract.js'
import type { AuthService } from '../auth/AuthService.js'
import { can, canSeeAllJobs } from '../auth/capabilities.js'
import { ConflictError, ForbiddenError, IllegalTransitionError, JobNotFoundError, NotPausableError, NotRetryableError, UnrecoverableError } from '../errors.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import type { JobProcessor } from '../runtime/ProcessorRegistry.js'

/** The job type that carries out `POST /api/v1/jobs/bulk`. */
export const BULK_JOB_TYPE = 'bulk_action'
/** Most job ids one request may list (a filter reaches every match instead). */
export const MAX_BULK_IDS = 10_000
const PAGE = 500

const statusList = z.union([z.enum(JOB_STATUSES), z.array(z.enum(JOB_STATUSES)).max(JOB_STATUSES.length)])
export const bulkRequestSchema = z.union([
  z.strictObject({
    action: z.enum(BULK_ACTIONS),
    jobIds: z.array(z.string().uuid('each jobId must be a UUID')).min(1).max(MAX_BULK_IDS),
  }),
  z.strictObject({
    action: z.enum(BULK_ACTIONS),
    filter: z.strictObject({
      status: statusList.optional(),
      type: z.string().max(100).optional(),
      source: z.string().max(100).optional(),
      search: z.string().max(200).optional(),
    }),
  }),
])
export type BulkRequestBody = z.infer<typeof bulkRequestSchema>

interface BulkData {
  userId: number
  request: BulkRequestBody
}

/**
 * Bulk actions as a job: the request becomes a `bulk_action` job (created by the caller, so it
 * shows in their stack with its progress), whose processor applies the action to each listed or
 * matching job with the caller's capabilities as they are when it runs. Jobs it may not touch or
 * whose status does not allow the action are skipped and counted.
 */
export class BulkActions {
  constructor(private readonly options: { jobs: RegisterJobs; auth: AuthService }) {}

  async start(user: PublicUser, request: BulkRequestBody): Promise<Job> {
    const count = 'jobIds' in request ? `${request.jobIds.length} job(s)` : 'every matching job'
    const [record] = await this.options.jobs.createJobs(
      [
        {
          name: `Bulk ${request.action}: ${count}`,
          type: BULK_JOB_TYPE,
          createdBy: user.id,
          source: 'api',
          maxAttempts: 1,
          data: { userId: user.id, request } satisfies BulkData,
        },
      ],
      { queue: true },
    )
    return record!
  }

  readonly processor: JobProcessor = async (job, { signal, updateProgress }) => {
    const { userId, request } = job.data as BulkData
    const user = await this.options.auth.userById(userId)
    if (!user) throw new UnrecoverableError('The user who asked for this bulk action no longer exists.')
    const outcome: BulkOutcome = { matched: 0, changed: 0, skipped: 0 }
    const apply = async (target: Job) => {
      if (target.jobId === job.jobId) return
      outcome.matched++
      try {
        this.assertMay(user, request.action, target)
        await this.act(request.action, target.jobId)
        outcome.changed++
      } catch (error) {
        if (
          error instanceof IllegalTransitionError ||
          error instanceof ForbiddenError ||
          error instanceof JobNotFoundError ||
          error instanceof ConflictError ||
          // A tracked job its plugin cannot pause, or that no processor could run again (issue 12).
          error instanceof NotPausableError ||
          error instanceof NotRetryableError
        ) {
          outcome.skipped++
        } else throw error
      }
    }
    let lastPercent = -1
    const progress = async (done: number, total: number) => {
      const percent = total ? Math.floor((done * 100) / total) : 100
      if (percent !== lastPercent) await updateProgress((lastPercent = percent), { bulk: outcome })
    }
    if ('jobIds' in request) {
      for (const [index, jobId] of request.jobIds.entries()) {
        if (signal.aborted) break
        const target = await this.options.jobs.getJob(jobId)
        if (target && this.visible(user, target)) await apply(target)
        else outcome.matched++, outcome.skipped++
        await progress(index + 1, request.jobIds.length)
      }
    } else {
      const filters = { ...request.filter, createdBy: canSeeAllJobs(user) ? undefined : user.id }
      const total = (await this.options.jobs.getJobs({ ...filters, limit: 1 })).total
      let cursor: string | undefined
      let done = 0
      do {
        // Keyset pages: jobs leaving the filter as they change do not shift the pages.
        const page = await this.options.jobs.getJobs({ ...filters, limit: PAGE, cursor })
        for (const target of page.jobs) {
          if (signal.aborted) break
          await apply(target)
          await progress(++done, Math.max(total, done))
        }
        cursor = page.nextCursor
      } while (cursor && !signal.aborted)
    }
    return outcome
  }

  private visible(user: PublicUser, job: Job): boolean {
    return canSeeAllJobs(user) || job.createdBy === user.id
  }

  /** The same rules as the single-job routes: manage_jobs, or the creator with create_jobs; delete needs delete_jobs. */
  private assertMay(user: PublicUser, action: BulkAction, job: Job) {
    if (action === 'delete') {
      if (!can(user, 'delete_jobs')) throw new ForbiddenError('Deleting jobs needs delete_jobs.')
      return
    }
    if (can(user, 'manage_jobs')) return
    if (job.createdBy === user.id && can(user, 'create_jobs')) return
    throw new ForbiddenError('Only the job’s creator or a user with manage_jobs may change it.')
  }

  private async act(action: BulkAction, jobId: string): Promise<unknown> {
    const { jobs } = this.options
    switch (action) {
      case 'cancel':
        return jobs.cancel(jobId)
      case 'pause':
        return jobs.pause(jobId)
      case 'resume':
        return jobs.resume(jobId)
      case 'retry':
        return jobs.retry(jobId)
      case 'delete':
        return jobs.deleteJob(jobId)
      default: {
        const exhaustive: never = action
        return exhaustive
      }
    }
  }
}
