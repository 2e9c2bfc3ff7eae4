import os from 'node:os'
import { JOB_CHANGE_EVENTS } from '../../contract.js'
import { createJobsController } from '../../controllers/JobsController.js'
import { createNotificationsController } from '../../controllers/NotificationsController.js'
import { NotificationStore } from '../../store/NotificationStore.js'
import { ValidationError } from '../../errors.js'
import { JobCreationLimits } from '../../limits/JobCreationLimits.js'
import { attachJobLogs, JobLogs } from '../../logs/index.js'
import { addJobLogPaths, mountJobLogRoutes } from '../../controllers/JobLogsController.js'
import { SqlRateBuckets } from '../../limits/RateBuckets.js'
import { scanSvg } from '../../security/sanitizeSvg.js'
import type { EnqueueJobInput, JobsHooks } from '../../hooks/pluginHooks.js'
import { toPublicJob } from '../../registry/jobRecord.js'
import { RegisterJobs } from '../../registry/RegisterJobs.js'
import { JobRuntime } from '../../runtime/JobRuntime.js'
import { ProcessorRegistry } from '../../runtime/ProcessorRegistry.js'
import { JobMetrics } from '../../metrics/JobMetrics.js'
import { createMetricsRouter } from '../../metrics/metricsRouter.js'
import { createWorkflows, type Workflows } from '../../workflows/index.js'
import { BULK_JOB_TYPE, BulkActions } from '../../workflows/bulkActions.js'
import type { Provider } from '../types.js'
import { jobsPostType } from './jobsPostType.js'

export interface JobsService {
  jobs: RegisterJobs
  processors: ProcessorRegistry
  runtime: JobRuntime
  /** Job logs and attempt history (core/logs). */
  logs: JobLogs
  /** Schedules, batches, chains, retention (core/workflows). */
  workflows: Workflows
  /** The job API for one plugin (its name becomes the default `source` and the error owner). */
  hooksFor(owner: string): JobsHooks
}

/**
 * Registers the `jobs` post type and wires RegisterJobs, the processors, the runtime, the REST
 * routes and the WebSocket broadcasts into the host.
 */
const jobsProvider: Provider<JobsService> = ({ hooks, context }) => {
  hooks.registerPostType(jobsPostType)
  const processors = new ProcessorRegistry()
  const jobs = new RegisterJobs({
    store: context.jobStore,
    hooks: context.hookRegistry,
    clock: context.clock,
    logger: context.logger,
    queueDefaults: (type) => processors.get(type),
    leaseMs: context.config.workerLeaseMs,
  })
  const workerId = `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`
  const logs = new JobLogs({
    knex: context.store.db.knex,
    clock: context.clock,
    logger: context.logger,
    instanceId: workerId,
    findJob: (jobId) => jobs.getJobRecord(jobId),
  })
  attachJobLogs(jobs, logs)
  // Attempts of tracked jobs (no processor here) end however they end: handle, REST, recovery.
  const trackedOutcomes = { 'job:completed': 'completed', 'job:failed': 'failed', 'job:cancelled': 'cancelled', 'job:paused': 'paused' } as const
  for (const [event, outcome] of Object.entries(trackedOutcomes) as [keyof typeof trackedOutcomes, (typeof trackedOutcomes)[keyof typeof trackedOutcomes]][]) {
    context.hookRegistry.on(event, ({ job }) => {
      if (!processors.has(job.type)) logs.trackedEnded({ id: job.id, jobId: job.jobId }, { outcome, error: job.errorMessage })
    })
  }
  context.realtime.attachLogs(logs)
  context.hookRegistry.addFilter('openapi_document', addJobLogPaths, { owner: 'jobs-logs' })
  const runtime = new JobRuntime({
    workerId,
    logs,
    jobs,
    processors,
    hooks: context.hookRegistry,
    clock: context.clock,
    logger: context.logger,
    concurrency: context.config.workerConcurrency,
    leaseMs: context.config.workerLeaseMs,
    pollIntervalMs: context.config.workerPollMs,
    shutdownGraceMs: context.config.shutdownGraceMs,
  })

  for (const event of JOB_CHANGE_EVENTS) {
    context.hookRegistry.on(event, (payload) => context.realtime.publish((payload as { job: any }).job, 'change'))
  }
  context.hookRegistry.on('job:progress', ({ job }) => context.realtime.publish(job, 'progress'))
  context.hookRegistry.on('job:deleted', ({ jobId, createdBy }) => context.realtime.publishDeleted(jobId, createdBy))

  const workflows = createWorkflows({ context, jobs, processors })
  // POST /jobs/bulk runs as a job of its own (progress in the caller's stack).
  const bulk = new BulkActions({ jobs, auth: context.auth })
  processors.register(BULK_JOB_TYPE, bulk.processor, { concurrency: 2, maxAttempts: 1 }, 'jobs-provider')
  // Prometheus at /metrics (bearer token with read_jobs), one registry per instance.
  const metrics = new JobMetrics({ hooks: context.hookRegistry, jobs })
  hooks.addFilter('http_mounts', (mounts: unknown[]) => [...mounts, { path: '/metrics', handler: createMetricsRouter({ auth: context.auth, metrics }) }])
  // Job creation limits per user (REST) and per plugin (hooks), API.md "Limits".
  const limits = new JobCreationLimits({
    buckets: new SqlRateBuckets({ knex: context.store.db.knex, clock: context.clock }),
    clock: context.clock,
    // O(1): the pending counters of the owner's scope (kept by triggers with every write).
    countPending: (owner) => jobs.pendingCount(owner),
    ...context.config.jobLimits,
  })
  context.addApiRouter('/jobs', createJobsController({ auth: context.auth, jobs, exportJob: workflows.exportJob, extend: (router) => {
    workflows.extendJobsRouter(router)
    mountJobLogRoutes(router, { jobs, logs })
  }, limits, bulk }))

  /** What the schema cannot know: the icon's size and depth, and that createdBy and parentJobId exist. */
  const checkInputs = async (inputs: readonly { iconSvg?: unknown; createdBy?: unknown; parentJobId?: unknown }[]) => {
    const users = new Set<number>()
    const parents = new Set<string>()
    for (const input of inputs) {
      if (typeof input?.iconSvg === 'string') scanSvg(input.iconSvg)
      if (typeof input?.createdBy === 'number' && Number.isSafeInteger(input.createdBy) && input.createdBy > 0) users.add(input.createdBy)
      if (typeof input?.parentJobId === 'string') parents.add(input.parentJobId)
    }
    for (const id of users) {
      if (!(await context.auth.userExists(id))) throw new ValidationError(`createdBy: no user has the id ${id}.`)
    }
    for (const id of parents) {
      if (!(await jobs.getJobRecord(id))) throw new ValidationError(`parentJobId: no job has the id ${JSON.stringify(id.slice(0, 64))}.`)
    }
  }
  context.addApiRouter('/schedules', workflows.schedulesRouter)
  context.addApiRouter(
    '/notifications',
    createNotificationsController({ auth: context.auth, jobs, dismissals: new NotificationStore(context.store.db), clock: context.clock }),
  )

  const hooksFor = (owner: string): JobsHooks => {
    const enqueueInputs = (inputs: EnqueueJobInput[]) =>
      inputs.map((input) => ({ source: owner, ...input, name: input.name ?? input.type }))
    /**
     * Counts against the plugin's rate and pending quota (429 RATE_LIMITED / QUOTA_EXCEEDED), then
     * checks and creates. All of it waits in the plugin's queue, so 10,000 calls at once cost
     * nothing up front and are served one by one between other requests.
     */
    const admit = <T>(inputs: readonly EnqueueJobInput[], create: () => Promise<T>): Promise<T> =>
      limits.admit({ kind: 'plugin', slug: owner }, Array.isArray(inputs) ? inputs.length : 1, async () => {
        await checkInputs(Array.isArray(inputs) ? inputs : [])
        return create()
      })
    return {
      createJob: (input) => admit([input as EnqueueJobInput], () => jobs.createJob({ source: owner, ...input })),
      registerJobProcessor: (type, handler, options) => processors.register(type, handler, options, owner),
      enqueueJob: async (input) => toPublicJob((await admit([input], () => jobs.createJobs(enqueueInputs([input]), { queue: true })))[0]!),
      enqueueJobs: async (inputs) => (await admit(inputs, () => jobs.createJobs(enqueueInputs(inputs), { queue: true }))).map(toPublicJob),
      getJobs: (filters) => jobs.getJobs(filters),
      getJob: (jobId) => jobs.getJob(jobId),
      cleanupOldJobs: (daysOld) => jobs.cleanupOldJobs(daysOld),
      ...workflows.hooksFor(owner),
    }
  }

  return { jobs, processors, runtime, logs, workflows, hooksFor }
}

export default jobsProvider
