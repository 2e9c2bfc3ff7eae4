import { JOB_CHANGE_EVENTS } from '../../contract.js'
import { createJobsController } from '../../controllers/JobsController.js'
import type { EnqueueJobInput, JobsHooks } from '../../hooks/pluginHooks.js'
import { toPublicJob } from '../../registry/jobRecord.js'
import { RegisterJobs } from '../../registry/RegisterJobs.js'
import { JobRuntime } from '../../runtime/JobRuntime.js'
import { ProcessorRegistry } from '../../runtime/ProcessorRegistry.js'
import { JobMetrics } from '../../metrics/JobMetrics.js'
import { createMetricsRouter } from '../../metrics/metricsRouter.js'
import { createWorkflows, type Workflows } from '../../workflows/index.js'
import type { Provider } from '../types.js'
import { jobsPostType } from './jobsPostType.js'

export interface JobsService {
  jobs: RegisterJobs
  processors: ProcessorRegistry
  runtime: JobRuntime
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
    store: context.store,
    hooks: context.hookRegistry,
    clock: context.clock,
    logger: context.logger,
    queueDefaults: (type) => processors.get(type),
  })
  const runtime = new JobRuntime({
    jobs,
    processors,
    hooks: context.hookRegistry,
    clock: context.clock,
    logger: context.logger,
    concurrency: context.config.workerConcurrency,
    leaseMs: context.config.workerLeaseMs,
    pollIntervalMs: context.config.workerPollMs,
  })

  for (const event of JOB_CHANGE_EVENTS) {
    context.hookRegistry.on(event, (payload) => context.realtime.publish((payload as { job: any }).job, 'change'))
  }
  context.hookRegistry.on('job:progress', ({ job }) => context.realtime.publish(job, 'progress'))
  context.hookRegistry.on('job:deleted', ({ jobId, createdBy }) => context.realtime.publishDeleted(jobId, createdBy))

  const workflows = createWorkflows({ context, jobs, processors })
  // Prometheus at /metrics (bearer token with read_jobs), one registry per instance.
  const metrics = new JobMetrics({ hooks: context.hookRegistry, jobs, store: context.store, clock: context.clock })
  hooks.addFilter('http_mounts', (mounts: unknown[]) => [...mounts, { path: '/metrics', handler: createMetricsRouter({ auth: context.auth, metrics }) }])
  context.addApiRouter('/jobs', createJobsController({ auth: context.auth, jobs, exportJob: workflows.exportJob, extend: workflows.extendJobsRouter }))
  context.addApiRouter('/schedules', workflows.schedulesRouter)

  const hooksFor = (owner: string): JobsHooks => {
    const enqueueInputs = (inputs: EnqueueJobInput[]) =>
      inputs.map((input) => ({ source: owner, ...input, name: input.name ?? input.type }))
    return {
      createJob: (input) => jobs.createJob({ source: owner, ...input }),
      registerJobProcessor: (type, handler, options) => processors.register(type, handler, options, owner),
      enqueueJob: async (input) => toPublicJob((await jobs.createJobs(enqueueInputs([input]), { queue: true }))[0]!),
      enqueueJobs: async (inputs) => (await jobs.createJobs(enqueueInputs(inputs), { queue: true })).map(toPublicJob),
      getJobs: (filters) => jobs.getJobs(filters),
      getJob: (jobId) => jobs.getJob(jobId),
      cleanupOldJobs: (daysOld) => jobs.cleanupOldJobs(daysOld),
      ...workflows.hooksFor(owner),
    }
  }

  return { jobs, processors, runtime, workflows, hooksFor }
}

export default jobsProvider
