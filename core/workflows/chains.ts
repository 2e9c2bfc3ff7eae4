import { z } from 'zod'
import type { Clock } from '../clock.js'
import { JOB_STATUSES, type Job, type JobStatus } from '../contract.js'
import { coerceError, ConflictError, IllegalTransitionError } from '../errors.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { Logger } from '../logger.js'
import { JOB_TYPE_PATTERN, MAX_TIMEOUT_MS, MAX_PRIORITY, MIN_PRIORITY, assertJsonValue, parseOrThrow } from '../registry/jobInput.js'
import type { JobRecord } from '../registry/jobRecord.js'
import { PAUSABLE_META, type RegisterJobs } from '../registry/RegisterJobs.js'
import { assertTemplatesValid, resolveTemplates, type StepOutput } from './templates.js'

/**
 * Chains (VoxCraft): steps that run one after another, each a child job of one parent job of
 * type `chain` (children carry `parentJobId`; the parent's progress = finished steps / steps).
 *
 * A step is created when the step before it completes, so its payload's templates
 * (`{{steps[0].result.content}}`) resolve from the results before it. The parent post's meta
 * `chain_step` (the index of the step that was created last; absent before the first) is the
 * guard: advancing moves it from i to i+1 with a conditional update *in the same transaction* that
 * creates step i+1, so when several processes react to the same completion only one creates the
 * next step, and a crash leaves the chain before or after the move, never in between: whoever
 * reconciles next (the sweep of any process) carries it on. A step that fails (after its own retries) or is cancelled fails
 * the chain; the steps after it are never created (they count as cancelled in the parent's
 * metadata and error message). Cancelling the parent cancels its running step; pausing the parent
 * holds the next step until it is resumed.
 */

export const CHAIN_JOB_TYPE = 'chain'
export const MAX_CHAIN_STEPS = 50
const CURSOR = 'chain_step'
const SWEEP_LIMIT = 100
/** A chain whose next step was claimed but never created (its process died) fails after this. */
const STUCK_MS = 60_000

export const chainStepSchema = z.strictObject({
  type: z.string().regex(JOB_TYPE_PATTERN, 'type must be 1-100 letters, digits, _ . : or -'),
  name: z.string().trim().min(1).max(200).optional(),
  payload: z.unknown().optional(),
  priority: z.number().int().min(MIN_PRIORITY).max(MAX_PRIORITY).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  timeout: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
})
export type ChainStep = z.infer<typeof chainStepSchema>

export const chainOptionsSchema = z.strictObject({
  name: z.string().trim().min(1).max(200).optional(),
  description: z.string().max(2000).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  source: z.string().trim().min(1).max(100).optional(),
  createdBy: z.number().int().positive().nullable().optional(),
})
export type ChainOptions = z.infer<typeof chainOptionsSchema>

const stepsSchema = z.array(chainStepSchema).min(1, 'a chain needs at least one step').max(MAX_CHAIN_STEPS)

export interface ChainEngineOptions {
  jobs: RegisterJobs
  hooks: HookRegistry
  clock: Clock
  logger: Logger
}

const SUCCESS: readonly JobStatus[] = ['completed', 'completed_with_errors']
const FAILURE: readonly JobStatus[] = ['failed', 'cancelled']

export class ChainEngine {
  constructor(private readonly options: ChainEngineOptions) {
    const { hooks } = options
    const onChildSettled = ({ job }: { job: Job }) => {
      if (job.parentJobId) this.reconcileSoon(job.parentJobId)
    }
    hooks.on('job:completed', onChildSettled)
    hooks.on('job:failed', onChildSettled)
    hooks.on('job:cancelled', ({ job }) => {
      if (job.parentJobId) this.reconcileSoon(job.parentJobId)
      if (job.type === CHAIN_JOB_TYPE) void this.cancelSteps(job.jobId)
    })
    hooks.on('job:resumed', ({ job }) => {
      // A resumed parent waits in `pending`; the engine (no single process) drives it again.
      if (job.type === CHAIN_JOB_TYPE) void this.restart(job.jobId)
    })
  }

  /** Creates the parent job (running) and the first step; returns the parent. */
  async enqueue(steps: ChainStep[], options: ChainOptions = {}): Promise<Job> {
    const parsed = parseOrThrow(stepsSchema, steps)
    const opts = parseOrThrow(chainOptionsSchema, options)
    parsed.forEach((step, index) => {
      assertJsonValue(step.payload ?? null, `steps[${index}].payload`)
      assertTemplatesValid(step.payload, index)
    })
    const { jobs } = this.options
    const [parent] = await jobs.createJobs([
      {
        name: opts.name ?? `Chain: ${parsed.map((step) => step.type).join(' → ')}`.slice(0, 200),
        type: CHAIN_JOB_TYPE,
        description: opts.description,
        metadata: { ...opts.metadata, chain: { total: parsed.length, completed: 0 } },
        source: opts.source,
        createdBy: opts.createdBy ?? null,
        data: { steps: parsed },
      },
    ])
    // Pausable (the engine holds the next step while paused); driven by every process's engine,
    // so it holds no lease of one process.
    await jobs.updateJobMeta(parent!.jobId, { [PAUSABLE_META]: '1', [CURSOR]: '-1' }, { statuses: ['pending'] })
    await jobs.start(parent!.jobId, { lease: false })
    // Creates step 0 with the cursor move (absent → 0), as every later step.
    await this.reconcile(parent!.jobId)
    return (await jobs.getJob(parent!.jobId))!
  }

  /** Starts a resumed (or never started) chain again and carries it on. */
  private async restart(parentJobId: string) {
    try {
      await this.settle(() => this.options.jobs.start(parentJobId, { lease: false }))
      await this.reconcile(parentJobId)
    } catch (error) {
      this.options.logger.error({ err: error, jobId: parentJobId }, 'Could not restart a chain')
    }
  }

  /**
   * Reconciles every running chain (after a restart, or steps settled by other processes), and
   * starts chains whose creator stopped before starting them.
   */
  async sweep(): Promise<void> {
    const running = await this.options.jobs.getJobs({ type: CHAIN_JOB_TYPE, status: 'running', limit: SWEEP_LIMIT })
    for (const parent of running.jobs) await this.reconcile(parent.jobId)
    const pending = await this.options.jobs.getJobs({ type: CHAIN_JOB_TYPE, status: 'pending', limit: SWEEP_LIMIT })
    for (const parent of pending.jobs) {
      if (this.options.clock.now() - Date.parse(parent.updatedAt) > STUCK_MS) await this.restart(parent.jobId)
    }
  }

  private reconcileSoon(parentJobId: string) {
    void this.reconcile(parentJobId).catch((error) =>
      this.options.logger.error({ err: error, jobId: parentJobId }, 'Could not advance a chain'),
    )
  }

  /**
   * Moves a chain on from the state of its current step: starts the next step, completes the
   * chain after the last one, or fails it when the step failed. Idempotent; safe to run anywhere.
   */
  async reconcile(parentJobId: string): Promise<void> {
    const { jobs } = this.options
    const parent = await jobs.getJobRecord(parentJobId)
    if (!parent || parent.type !== CHAIN_JOB_TYPE || parent.status !== 'running') return
    const stored = parent.stored.meta[CURSOR]
    if (stored === undefined) {
      // Its creator stopped before writing the cursor: write it (-1: no step created yet), then
      // every move is a compare-and-set of that value.
      const written = await jobs.updateJobMeta(parentJobId, { [CURSOR]: '-1' }, { statuses: ['running'], expectMeta: { [CURSOR]: null } })
      if (written) await this.reconcile(parentJobId)
      return
    }
    const cursor = Number(stored)
    if (!Number.isInteger(cursor)) return
    const steps = stepsOf(parent)
    const children = await this.children(parentJobId)
    if (cursor === -1) {
      await this.advance(parent, steps, -1, [])
      return
    }
    if (cursor >= steps.length) {
      // Every step completed and the cursor moved past the last one: complete the chain.
      await this.completeChain(parent, steps, children)
      return
    }
    const current = children.get(cursor)
    if (!current) {
      // Only a chain written before steps were created with the cursor move can get here.
      if (this.options.clock.now() - Date.parse(parent.updatedAt) > STUCK_MS) {
        await this.failChain(parent, cursor, steps, `Step ${cursor + 1} could not be started.`)
      }
      return
    }
    if (FAILURE.includes(current.status)) {
      const reason = current.status === 'cancelled' ? 'was cancelled' : `failed: ${current.errorMessage ?? 'unknown error'}`
      await this.failChain(parent, cursor, steps, `Step ${cursor + 1} of ${steps.length} (${current.type}) ${reason}`)
      return
    }
    if (!SUCCESS.includes(current.status)) return
    const outputs: StepOutput[] = []
    for (let i = 0; i <= cursor; i++) {
      const child = children.get(i)
      outputs.push({ jobId: child?.jobId ?? '', result: child?.result ?? null })
    }
    await this.advance(parent, steps, cursor, outputs)
  }

  /**
   * Moves the cursor from `cursor` to `cursor + 1` and creates that step in one transaction (only
   * the process whose move holds creates it); past the last step, moves it and completes the chain.
   */
  private async advance(parent: JobRecord, steps: ChainStep[], cursor: number, outputs: StepOutput[]) {
    const { jobs } = this.options
    const next = cursor + 1
    const expectMeta = { [CURSOR]: String(cursor) }
    if (next >= steps.length) {
      const claimed = await jobs.updateJobMeta(parent.jobId, { [CURSOR]: String(next) }, { statuses: ['running'], expectMeta })
      if (!claimed) return
      await this.progress(parent, next, steps.length)
      await this.completeChain(parent, steps, await this.children(parent.jobId))
      return
    }
    const step = steps[next]!
    let data: unknown
    try {
      data = resolveTemplates(step.payload ?? null, outputs)
    } catch (error) {
      await this.failChain(parent, next, steps, `Step ${next + 1} of ${steps.length} (${step.type}) could not start: ${coerceError(error).message}`, true, cursor)
      return
    }
    const moved = await jobs.updateJobMetaAndCreate(parent.jobId, { [CURSOR]: String(next) }, { statuses: ['running'], expectMeta }, [
      {
        name: step.name ?? `${parent.name} · step ${next + 1}: ${step.type}`.slice(0, 200),
        type: step.type,
        data,
        priority: step.priority,
        maxAttempts: step.maxAttempts,
        timeout: step.timeout,
        source: parent.source ?? undefined,
        createdBy: parent.createdBy,
        parentJobId: parent.jobId,
        metadata: { chainStep: next },
      },
    ])
    if (moved && next > 0) await this.progress(parent, next, steps.length)
  }

  private async completeChain(parent: JobRecord, steps: ChainStep[], children: Map<number, Job>) {
    const last = children.get(steps.length - 1)
    await this.settle(() =>
      this.options.jobs.complete(parent.jobId, {
        steps: steps.map((step, index) => ({ jobId: children.get(index)?.jobId ?? '', type: step.type, status: children.get(index)?.status ?? null })),
        result: last?.result ?? null,
      }),
    )
  }

  private async failChain(parent: JobRecord, index: number, steps: ChainStep[], message: string, stepNeverRan = false, cursor = index) {
    const remaining = steps.length - index - 1
    const cancelled = Array.from({ length: remaining + (stepNeverRan ? 1 : 0) }, (_, i) => index + 1 - (stepNeverRan ? 1 : 0) + i)
    const text = remaining > 0 ? `${message}. The remaining ${remaining} step(s) were cancelled and never ran.` : message
    const claimed = await this.options.jobs.updateJobMeta(parent.jobId, { [CURSOR]: 'done' }, {
      statuses: JOB_STATUSES,
      expectMeta: { [CURSOR]: String(cursor) },
    })
    if (!claimed) return
    await this.settle(async () => {
      await this.options.jobs.updateProgress(parent.jobId, Math.floor((index * 100) / steps.length), {
        chain: { total: steps.length, completed: index, failedStep: index, cancelledSteps: cancelled },
      })
      await this.options.jobs.fail(parent.jobId, text)
    })
  }

  private async progress(parent: JobRecord, completed: number, total: number) {
    await this.settle(() =>
      this.options.jobs.updateProgress(parent.jobId, Math.floor((completed * 100) / total), { chain: { total, completed } }),
    )
  }

  /** Cancels the active steps of a cancelled chain. */
  private async cancelSteps(parentJobId: string) {
    for (const child of (await this.children(parentJobId)).values()) {
      if (child.status === 'pending' || child.status === 'running' || child.status === 'paused') {
        await this.settle(() => this.options.jobs.cancel(child.jobId))
      }
    }
  }

  private async children(parentJobId: string): Promise<Map<number, Job>> {
    const list = await this.options.jobs.getJobs({ parentJobId, limit: MAX_CHAIN_STEPS * 2 })
    const byStep = new Map<number, Job>()
    for (const child of list.jobs) {
      const step = child.metadata.chainStep
      if (typeof step === 'number' && !byStep.has(step)) byStep.set(step, child)
    }
    return byStep
  }

  /** A change that lost a race with a person (cancel, pause) is expected, not an error. */
  private async settle(change: () => Promise<unknown>) {
    try {
      await change()
    } catch (error) {
      if (error instanceof IllegalTransitionError || error instanceof ConflictError) return
      throw error
    }
  }

}

function stepsOf(parent: JobRecord): ChainStep[] {
  const steps = (parent.data as { steps?: unknown } | null)?.steps
  return Array.isArray(steps) ? (steps as ChainStep[]) : []
}

