import type { Router } from 'express'
import { createSchedulesController } from '../controllers/SchedulesController.js'
import type { EnqueueJobInput } from '../hooks/pluginHooks.js'
import type { ProviderContext } from '../providers/types.js'
import type { Job } from '../contract.js'
import { toPublicJob, type JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import type { ProcessorRegistry } from '../runtime/ProcessorRegistry.js'
import { BatchEngine, type BatchItemHandler, type BatchItemInput, type BatchProcessorOptions } from './batches.js'
import { exportJob } from './exportJob.js'
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
}

export interface Workflows {
  scheduler: Scheduler
  batches: BatchEngine
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

  return {
    scheduler,
    batches,
    exportJob: (record, format) => exportJob({ jobs, batches }, record, format),
    hooksFor: (owner) => ({
      scheduleJob: (input) => scheduler.schedule(input, owner),
      unscheduleJob: (name) => scheduler.unschedule(name),
      registerBatchProcessor: (type, itemHandler, batchOptions) => batches.register(type, itemHandler, batchOptions, owner),
      enqueueBatch: async ({ items, data, ...input }) => {
        const checked = batches.validateItems(items)
        return toPublicJob(await enqueue({ source: owner, ...input, data: { ...data, items: checked } }))
      },
    }),
    schedulesRouter: createSchedulesController({ auth: context.auth, scheduler }),
    start() {
      scheduler.start()
    },
    async stop() {
      await scheduler.stop()
    },
  }
}
