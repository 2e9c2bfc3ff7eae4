import type { Router } from 'express'
import type { Job, JobEventMap, JobEventName, JobList, JobListFilters } from '../contract.js'
import type { JobpostConfig } from '../config.js'
import type { Logger } from '../logger.js'
import type { JobHandle } from '../registry/JobHandle.js'
import type { TrackedJobOptions } from '../registry/RegisterJobs.js'
import type { CreateJobInput } from '../registry/jobInput.js'
import type { PostTypeDefinition } from '../registry/RegisterPostTypes.js'
import type { JobProcessor, ProcessorOptions } from '../runtime/ProcessorRegistry.js'
import type { WorkflowHooks } from '../workflows/index.js'
import type { HookRegistry } from './Hooks.js'
import { inPlugin } from './pluginScope.js'

type Callback = (...args: any[]) => unknown

/** Actions, filters, events and post types: what every provider and plugin gets. */
export interface CoreHooks {
  addAction(name: string, callback: Callback, priority?: number): void
  removeAction(name: string, callback: Callback): boolean
  doAction(name: string, ...args: unknown[]): Promise<void>
  addFilter(name: string, callback: Callback, priority?: number): void
  removeFilter(name: string, callback: Callback): boolean
  applyFilters<T>(name: string, value: T, ...args: unknown[]): Promise<T>
  /** Typed job events (`job:started`, `job:progress`, ...); returns the unsubscribe function. */
  on<E extends JobEventName>(event: E, listener: (payload: JobEventMap[E]) => unknown): () => void
  registerPostType(definition: PostTypeDefinition): void
}

export type EnqueueJobInput = Omit<CreateJobInput, 'name'> & { name?: string }

/** The job API the jobs-provider adds to `hooks` (see ../shared/API.md, Plugin API). */
/** Plus schedules, batches and chains: see WorkflowHooks in core/workflows/index.ts. */
export interface JobsHooks extends WorkflowHooks {
  /**
   * A tracked job the plugin drives through the handle. `onPause(job)` makes it pausable (else a
   * pause is 409 NOT_PAUSABLE): it is called when the job is paused, and the plugin must stop;
   * a resumed job waits in `pending` until the plugin calls `start()` again.
   */
  createJob(input: CreateJobInput & TrackedJobOptions): Promise<JobHandle>
  registerJobProcessor(type: string, handler: JobProcessor, options?: ProcessorOptions): void
  enqueueJob(input: EnqueueJobInput): Promise<Job>
  enqueueJobs(inputs: EnqueueJobInput[]): Promise<Job[]>
  getJobs(filters?: JobListFilters): Promise<JobList>
  getJob(jobId: string): Promise<Job | null>
  cleanupOldJobs(daysOld: number): Promise<number>
}

export type PluginHooks = CoreHooks & JobsHooks

export interface PluginContext {
  /** The plugin's slug (or the provider's name). */
  name: string
  config: Readonly<JobpostConfig>
  logger: Logger
  /**
   * A router mounted at /api/v1/plugins/<name>, behind bearer authentication (req.user is set).
   * Use `requireCapability` from core/http/middleware for capability checks.
   */
  router: Router
}

export type PluginModule = (args: { hooks: PluginHooks; context: PluginContext }) => void | Promise<void>

/**
 * Core hooks bound to one owner, so that errors in its callbacks are reported with its name. The
 * callbacks run in the owner's plugin scope (core/hooks/pluginScope.ts): faults of the timers and
 * promises they start are reported with its name too and never end the process.
 */
export function coreHooksFor(
  owner: string,
  registry: HookRegistry,
  registerPostType: (definition: PostTypeDefinition) => void,
): CoreHooks {
  const scoped = new WeakMap<Callback, Callback>()
  const wrap = (callback: Callback): Callback => {
    if (typeof callback !== 'function') return callback
    let wrapped = scoped.get(callback)
    if (!wrapped) {
      wrapped = (...args: unknown[]) => inPlugin(owner, () => callback(...args))
      scoped.set(callback, wrapped)
    }
    return wrapped
  }
  const unwrap = (callback: Callback): Callback => (typeof callback === 'function' ? (scoped.get(callback) ?? callback) : callback)
  return {
    addAction: (name, callback, priority) => registry.addAction(name, wrap(callback), { priority, owner }),
    removeAction: (name, callback) => registry.removeAction(name, unwrap(callback)),
    doAction: (name, ...args) => registry.doAction(name, ...args),
    addFilter: (name, callback, priority) => registry.addFilter(name, wrap(callback), { priority, owner }),
    removeFilter: (name, callback) => registry.removeFilter(name, unwrap(callback)),
    applyFilters: (name, value, ...args) => registry.applyFilters(name, value, ...args),
    on: (event, listener) => registry.on(event, wrap(listener) as typeof listener, owner),
    registerPostType,
  }
}
