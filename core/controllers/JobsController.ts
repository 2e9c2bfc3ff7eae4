import { Router, type Request } from 'express'
import { z } from 'zod'
import { JOB_SORTS, JOB_STATUSES, type JobStatus, type PublicUser } from '../contract.js'
import type { AuthService } from '../auth/AuthService.js'
import { assertMaySetPrivilegedFields, can, canSeeAllJobs } from '../auth/capabilities.js'
import { ForbiddenError, JobNotFoundError, ValidationError } from '../errors.js'
import { sendData, sendList } from '../http/envelope.js'
import { authenticate, requireCapability, requireJsonBody } from '../http/middleware.js'
import { jobFieldsSchema, MAX_PRIORITY, MIN_PRIORITY, parseOrThrow } from '../registry/jobInput.js'
import { toPublicJob, type JobRecord } from '../registry/jobRecord.js'
import { MAX_LIST_LIMIT, type RegisterJobs } from '../registry/RegisterJobs.js'
import { MAX_REORDER_JOBS } from '../registry/reorderJobs.js'
import type { JobCreationLimits } from '../limits/JobCreationLimits.js'
import { scanSvg } from '../security/sanitizeSvg.js'
import { canSeeJob, JOB_ID_PATTERN, visibleJob as visibleJobOf } from './jobAccess.js'
import { parseDataFilters, parseSearch, SEARCH_MAX_LENGTH, SEARCH_MAX_WORDS, type DataFilter } from '../store/jobs/search/query.js'
import { bulkRequestSchema, type BulkActions } from '../workflows/bulkActions.js'

const UUID = JOB_ID_PATTERN

const singleParam = (name: string, max = 200) =>
  z.string({ error: `${name} must be given once` }).max(max, `${name} is too long`)

const integerParam = (name: string, min: number, max: number) =>
  singleParam(name, 12)
    .regex(/^\d+$/, `${name} must be an integer from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be an integer from ${min} to ${max}`)

const listQuerySchema = z.strictObject({
  status: z.union([z.string(), z.array(z.string()).max(JOB_STATUSES.length * 2)]).optional(),
  type: singleParam('type', 100).optional(),
  source: singleParam('source', 100).optional(),
  search: z
    .string({ error: 'search must be given once' })
    .max(SEARCH_MAX_LENGTH, `search is too long: at most ${SEARCH_MAX_LENGTH} characters and ${SEARCH_MAX_WORDS} words`)
    .optional(),
  parentJobId: singleParam('parentJobId', 64).regex(UUID, 'parentJobId must be a UUID').optional(),
  sort: z.enum(JOB_SORTS, { error: `sort must be one of ${JOB_SORTS.join(', ')}` }).optional(),
  limit: integerParam('limit', 1, MAX_LIST_LIMIT).optional(),
  offset: integerParam('offset', 0, 1_000_000_000).optional(),
  cursor: singleParam('cursor', 300).optional(),
})
const seriesQuerySchema = z.strictObject({ minutes: integerParam('minutes', 1, 1440).optional() })

const cleanupQuerySchema = z.strictObject({ daysOld: integerParam('daysOld', 1, 3650) })
const exportQuerySchema = z.strictObject({ format: z.enum(['csv', 'json']).optional() })
const prioritySchema = z.strictObject({ priority: z.number().int().min(MIN_PRIORITY).max(MAX_PRIORITY) })
const emptyBodySchema = z.union([z.strictObject({}), z.undefined()])
const reorderSchema = z.strictObject({
  jobIds: z
    .array(z.string().regex(UUID, 'each of jobIds must be a job UUID'), { error: 'jobIds must be an array of job UUIDs' })
    .min(1, 'jobIds must list at least one job')
    .max(MAX_REORDER_JOBS, `jobIds may list at most ${MAX_REORDER_JOBS} jobs`),
})
const queueQuerySchema = z.strictObject({
  type: singleParam('type', 100).min(1, 'type is required'),
  delayed: z.enum(['true', 'false'], { error: 'delayed must be true or false' }).optional(),
  limit: integerParam('limit', 1, MAX_LIST_LIMIT).optional(),
  offset: integerParam('offset', 0, 1_000_000_000).optional(),
})

/**
 * `data.<path>=value` parameters of a list (at most 3; path segments of letters, digits and `_`),
 * apart from the others; each given once.
 */
export function splitDataParams(query: Record<string, unknown>): { data?: Record<string, string>; rest: Record<string, unknown> } {
  const rest: Record<string, unknown> = {}
  const filters: DataFilter[] = []
  for (const [key, value] of Object.entries(query)) {
    if (!key.startsWith('data.')) {
      rest[key] = value
      continue
    }
    if (typeof value !== 'string') throw new ValidationError(`${key.slice(0, 60)} must be given once.`)
    filters.push({ path: key.slice('data.'.length), value })
  }
  if (filters.length === 0) return { rest }
  return { data: Object.fromEntries(parseDataFilters(filters).map((filter) => [filter.path, filter.value])), rest }
}

/** `status=a,b&status=c` → [a, b, c], each checked against the contract's statuses. */
export function parseStatuses(raw: string | string[] | undefined): JobStatus[] | undefined {
  if (raw === undefined) return undefined
  const values = ([] as string[])
    .concat(raw)
    .flatMap((part) => part.split(','))
    .map((part) => part.trim())
    .filter(Boolean)
  for (const value of values) {
    if (!JOB_STATUSES.includes(value as JobStatus)) {
      throw new ValidationError(`status must be one of ${JOB_STATUSES.join(', ')} (got ${JSON.stringify(value.slice(0, 40))}).`)
    }
  }
  return values.length ? [...new Set(values as JobStatus[])] : undefined
}

export { canSeeJob }

export interface JobsControllerOptions {
  auth: AuthService
  jobs: RegisterJobs
  /** Export of a job's items (batches add theirs); defaults to the job alone. */
  exportJob?: (record: JobRecord, format: 'csv' | 'json') => Promise<{ body: string; contentType: string }>
  /** Extra routes mounted on the same router before `/:jobId` (chains, priority...). */
  extend?: (router: Router) => void
  /** POST /jobs/bulk: actions on listed or matching jobs, carried out by a `bulk_action` job. */
  bulk?: BulkActions
  /** Per-user rate and pending quota for POST /jobs (core/limits). */
  limits?: JobCreationLimits
}

/**
 * /api/v1/jobs: every route of the contract's Jobs table. Users without read_jobs see only
 * their own jobs; everything else is 404 to them, so ids of other users' jobs do not leak.
 */
export function createJobsController(options: JobsControllerOptions): Router {
  const { auth, jobs } = options
  const router = Router()
  router.use(authenticate(auth))

  const visibleJob = (req: Request) => visibleJobOf(jobs, req)

  /** manage_jobs acts on any job; a creator with create_jobs acts on their own. */
  function assertMayControl(user: PublicUser, record: JobRecord) {
    if (can(user, 'manage_jobs')) return
    if (record.createdBy === user.id && can(user, 'create_jobs')) return
    throw new ForbiddenError('Only the job’s creator or a user with manage_jobs may change it.')
  }

  router.get('/', async (req, res) => {
    const { data, rest } = splitDataParams(req.query as Record<string, unknown>)
    const query = parseOrThrow(listQuerySchema, rest)
    if (query.search !== undefined) parseSearch(query.search)
    if (query.cursor !== undefined && query.offset !== undefined) throw new ValidationError('Give cursor or offset, not both.')
    const user = req.user!
    const list = await jobs.getJobs({
      status: parseStatuses(query.status),
      type: query.type,
      source: query.source,
      search: query.search,
      data,
      parentJobId: query.parentJobId,
      createdBy: canSeeAllJobs(user) ? undefined : user.id,
      sort: query.sort,
      limit: query.limit,
      offset: query.offset,
      cursor: query.cursor,
    })
    sendList(res, list.jobs, {
      total: list.total,
      limit: list.limit,
      offset: list.offset,
      ...(list.totalCapped ? { totalCapped: true } : {}),
      ...(list.nextCursor ? { nextCursor: list.nextCursor } : {}),
    })
  })

  router.get('/stats', async (req, res) => {
    parseOrThrow(z.strictObject({}), req.query)
    const user = req.user!
    const stats = await jobs.stats({ createdBy: canSeeAllJobs(user) ? undefined : user.id })
    // Hosts and process ids of the instances are for administrators only.
    if (!can(user, 'manage_jobs')) delete stats.instances
    sendData(res, stats)
  })

  router.get('/stats/series', async (req, res) => {
    const { minutes = 60 } = parseOrThrow(seriesQuerySchema, req.query)
    const user = req.user!
    sendData(res, await jobs.series({ minutes, createdBy: canSeeAllJobs(user) ? undefined : user.id }))
  })

  router.delete('/cleanup', requireCapability('manage_jobs'), async (req, res) => {
    const { daysOld } = parseOrThrow(cleanupQuerySchema, req.query)
    sendData(res, { deleted: await jobs.cleanupOldJobs(daysOld) })
  })

  router.post('/', requireCapability('create_jobs'), requireJsonBody, async (req, res) => {
    const user = req.user!
    // An icon too big or too deep is refused by a linear scan, before any parsing (400 INVALID_SVG).
    if (typeof req.body?.iconSvg === 'string') scanSvg(req.body.iconSvg)
    const body = parseOrThrow(jobFieldsSchema, req.body)
    assertMaySetPrivilegedFields(user, body)
    const create = () => jobs.createJobs([{ ...body, source: body.source ?? 'api', createdBy: user.id }])
    const [record] = options.limits ? await options.limits.admit({ kind: 'user', userId: user.id }, 1, create) : await create()
    sendData(res, toPublicJob(record!), 201)
  })

  router.post('/bulk', requireJsonBody, async (req, res) => {
    if (!options.bulk) throw new JobNotFoundError('bulk')
    const request = parseOrThrow(bulkRequestSchema, req.body)
    const job = await options.bulk.start(req.user!, request)
    sendData(res, { bulkJobId: job.jobId }, 202)
  })

  // The Queue view: pending jobs of a type in the order the runtime claims them (queueOrder.ts).
  router.get('/queue', async (req, res) => {
    const query = parseOrThrow(queueQuerySchema, req.query)
    const user = req.user!
    const list = await jobs.queue({
      type: query.type,
      delayed: query.delayed === 'true',
      createdBy: canSeeAllJobs(user) ? undefined : user.id,
      limit: query.limit,
      offset: query.offset,
    })
    sendList(res, list.jobs, { total: list.total, limit: list.limit, offset: list.offset })
  })

  // Pending jobs claimed in the listed order (reorderJobs.ts); all or nothing; each moved job is a job_update.
  router.post('/reorder', requireCapability('manage_jobs'), requireJsonBody, async (req, res) => {
    const { jobIds } = parseOrThrow(reorderSchema, req.body)
    const user = req.user!
    const moved = await jobs.reorder(jobIds, { visible: (record) => canSeeJob(user, record) })
    sendData(res, moved.map(toPublicJob))
  })

  // A chain creates jobs too: it counts against the same per-user rate and pending quota (checked
  // here, before the chain route mounted by `extend` creates it).
  const limits = options.limits
  if (limits) {
    router.post('/chain', async (req, _res, next) => {
      await limits.admit({ kind: 'user', userId: req.user!.id }, 1, async () => undefined)
      next()
    })
  }

  options.extend?.(router)

  // One job in detail: the Job object plus its payload (`data`), for whoever may see the job.
  router.get('/:jobId', async (req, res) => {
    const record = await visibleJob(req)
    sendData(res, { ...toPublicJob(record), data: record.data })
  })

  const actions = {
    cancel: (jobId: string) => jobs.cancel(jobId),
    pause: (jobId: string) => jobs.pause(jobId),
    resume: (jobId: string) => jobs.resume(jobId),
    retry: (jobId: string) => jobs.retry(jobId),
    'run-now': (jobId: string) => jobs.runNow(jobId),
  }
  for (const [action, run] of Object.entries(actions)) {
    router.post(`/:jobId/${action}`, requireJsonBody, async (req, res) => {
      parseOrThrow(emptyBodySchema, req.body)
      const record = await visibleJob(req)
      assertMayControl(req.user!, record)
      sendData(res, toPublicJob(await run(record.jobId)))
    })
  }

  router.post('/:jobId/priority', requireJsonBody, async (req, res) => {
    const { priority } = parseOrThrow(prioritySchema, req.body)
    const record = await visibleJob(req)
    assertMayControl(req.user!, record)
    assertMaySetPrivilegedFields(req.user!, { priority })
    sendData(res, toPublicJob(await jobs.setPriority(record.jobId, priority)))
  })

  router.delete('/:jobId', requireCapability('delete_jobs'), async (req, res) => {
    const record = await visibleJob(req)
    await jobs.deleteJob(record.jobId)
    sendData(res, { deleted: true, jobId: record.jobId })
  })

  router.get('/:jobId/export', async (req, res) => {
    const { format = 'json' } = parseOrThrow(exportQuerySchema, req.query)
    const record = await visibleJob(req)
    const exported = options.exportJob
      ? await options.exportJob(record, format)
      : { body: JSON.stringify({ job: toPublicJob(record), items: [] }, null, 2), contentType: 'application/json' }
    res.setHeader('Content-Type', `${exported.contentType}; charset=utf-8`)
    res.setHeader('Content-Disposition', `attachment; filename="job-${record.jobId}.${format}"`)
    res.status(200).send(exported.body)
  })

  return router
}
