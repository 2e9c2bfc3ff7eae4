import type { Router } from 'express'
import { mountChainRoutes } from '../controllers/ChainsController.js'
import { createSchedulesController } from '../controllers/SchedulesController.js'
import type { EnqueueJobInput } from '../hooks/pluginHooks.js'
import type { ProviderContext } from '../providers/types.js'
import type { Job } from '../contract.js'
import { toPublicJob, type JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import type { ProcessorRegistry } from '../runtime/ProcessorRegistry.js'
import { BatchEngine, type BatchItemHandler, type BatchItemInput, type BatchProcessorOptions } from './batches.js'
import { ChainEngine, type ChainOptions, type ChainStep } from './chains.js'
import { exportJob } from './exportJob.js'
import { addWorkflowPaths } from './openapi.js'
import { Retention } from './retention.js'
import { Scheduler, type Schedule, type ScheduleInput } from './schedules.js'

export type EnqueueBatchInput = Omit<EnqueueJobInput, 'data'> & { items: BatchItemInput[]; data?: Record<string, unknown> }

/** The workflow part of the plugin API (see README, "Workflows"). */
export interface WorkflowHooks {
  /** Creates or updates the cron schedule `name`; every run enqueues `jobData`. */
  scheduleJob(input: ScheduleInput): Promise<Schedule>
  /** Removes the schedule; resolves false when there was none. */
  unscheduleJob(name: string): Promise<boolean>
  /**
   * Registers the processor of batch jobs of `type`: `itemHandler` runs once per item of
   * `data.items`, with its own concurrency and retries (see BatchProcessorOptions).
   */
  registerBatchProcessor(type: string, itemHandler: BatchItemHandler, options?: BatchProcessorOptions): void
  /** Enqueues a batch job (`data.items` = items, checked first). */
  enqueueBatch(input: EnqueueBatchInput): Promise<Job>
  /**
   * Enqueues steps that run one after another as children of a parent job of type `chain`;
   * `{{steps[N].result.path}}` in a payload reads an earlier step's result. Resolves with the parent.
   */
  enqueueChain(steps: ChainStep[], options?: Omit<ChainOptions, 'source'>): Promise<Job>
}

export interface Workflows {
  scheduler: Scheduler
  batches: BatchEngine
  chains: ChainEngine
  retention: Retention
  /** JobsController's `extend`: POST /api/v1/jobs/chain. */
  extendJobsRouter(router: Router): void
  /** JobsController's export: a job with its items (batch items or child jobs). */
  exportJob(record: JobRecord, format: 'csv' | 'json'): Promise<{ body: string; contentType: string }>
  hooksFor(owner: string): WorkflowHooks
  /** Mounted at /api/v1/schedules. */
  schedulesRouter: Router
  /** Starts the timers (schedule ticks); with the runtime. */
  start(): void
  /** Stops every timer and waits for work under way. */
  stop(): Promise<void>
}

export interface WorkflowsOptions {
  context: ProviderContext
  jobs: RegisterJobs
  processors: ProcessorRegistry
  /** Tick interval of the scheduler (default 1 s). */
  tickIntervalMs?: number
  /** How often running chains are reconciled (default 5 s). */
  chainSweepMs?: number
  /** How often retention runs (default hourly). */
  retentionIntervalMs?: number
}

/** Schedules, batches, chains and retention, built on RegisterJobs and the runtime. */
export function createWorkflows(options: WorkflowsOptions): Workflows {
  const { context, jobs } = options
  const enqueue = async (input: EnqueueJobInput & { source?: string }) =>
    (await jobs.createJobs([{ ...input, name: input.name ?? input.type }], { queue: true }))[0]!

  const scheduler = new Scheduler({
    store: context.store,
    clock: context.clock,
    logger: context.logger,
    tickIntervalMs: options.tickIntervalMs,
    enqueue: async (jobData, { owner, scheduleName, scheduledFor }) => {
      const metadata = { ...((jobData.metadata as Record<string, unknown> | undefined) ?? {}), scheduleName, scheduledFor }
      const record = await enqueue({ ...(owner ? { source: owner } : {}), ...(jobData as EnqueueJobInput), metadata })
      return record.jobId
    },
  })

  const batches = new BatchEngine({
    store: context.store,
    jobs,
    processors: options.processors,
    hooks: context.hookRegistry,
    clock: context.clock,
    logger: context.logger,
  })

  context.hookRegistry.addFilter('openapi_document', addWorkflowPaths, { owner: 'workflows' })
  const chains = new ChainEngine({ jobs, hooks: context.hookRegistry, clock: context.clock, logger: context.logger })
  const retention = new Retention({
    jobs,
    sweepOrphans: () => batches.sweepOrphans(),
    logger: context.logger,
    retentionDays: context.config.jobRetentionDays,
    intervalMs: options.retentionIntervalMs,
  })
  let chainSweep: NodeJS.Timeout | undefined
  let sweeping: Promise<void> | undefined

  return {
    scheduler,
    batches,
    chains,
    retention,
    extendJobsRouter: (router) => mountChainRoutes(router, { chains, jobs, clock: context.clock }),
    exportJob: (record, format) => exportJob({ jobs, batches }, record, format),
    hooksFor: (owner) => ({
      scheduleJob: (input) => scheduler.schedule(input, owner),
      unscheduleJob: (name) => scheduler.unschedule(name),
      registerBatchProcessor: (type, itemHandler, batchOptions) => batches.register(type, itemHandler, batchOptions, owner),
      enqueueBatch: async ({ items, data, ...input }) => {
        const checked = batches.validateItems(items)
        return toPublicJob(await enqueue({ source: owner, ...input, data: { ...data, items: checked } }))
      },
      enqueueChain: (steps, chainOptions) => chains.enqueue(steps, { ...chainOptions, source: owner }),
    }),
    schedulesRouter: createSchedulesController({ auth: context.auth, scheduler }),
    start() {
      scheduler.start()
      retention.start()
      chainSweep ??= setInterval(() => {
        sweeping ??= chains
          .sweep()
          .catch((error) => context.logger.error({ err: error }, 'Chain sweep failed'))
          .finally(() => (sweeping = undefined))
      }, options.chainSweepMs ?? 5000)
      chainSweep.unref()
    },
    async stop() {
      clearInterval(chainSweep)
      chainSweep = undefined
      await scheduler.stop()
      await retention.stop()
      await sweeping
    },
  }
}
