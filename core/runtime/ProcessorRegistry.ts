import { z } from 'zod'
import type { Job, LogLevel } from '../contract.js'
import { ValidationError } from '../errors.js'
import { JOB_TYPE_PATTERN, MAX_TIMEOUT_MS, describeIssues } from '../registry/jobInput.js'
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js'

/** What a processor receives besides the job. */
export interface ProcessorContext {
  /**
   * Aborts when the attempt must stop; `signal.reason` says why: `'cancelled'`, `'paused'` (the
   * attempt is not counted; the job runs again from the start once resumed), `'timeout'`,
   * `'shutdown'` (given back to the queue, not counted) or `'lease_lost'`. Anything the attempt
   * writes after the abort is refused.
   */
  signal: AbortSignal
  /** Written behind: at most ~10 writes a second per job; the last value is always written. */
  updateProgress(progress: number, metadata?: Record<string, unknown>): Promise<void>
  log(message: string, fields?: Record<string, unknown>, level?: LogLevel): void
  /**
   * Saves `value` (JSON, ≤ 256 KB) as the job's checkpoint: the next attempt (after a pause, a
   * failure or a crash) gets it back as `job.checkpoint`. Refused (LEASE_LOST) after an abort.
   */
  checkpoint(value: unknown): Promise<void>
  /** 1 for the first attempt. */
  attempt: number
}

/** A job as its processor sees it: the public job plus its `data` payload and last checkpoint. */
export type ProcessableJob = Job & { data: unknown; checkpoint?: unknown }

/**
 * A processor returns the job's result, or throws. Throw `UnrecoverableError` (or return
 * `{ success: false, retryable: false }`) to fail without retry; an error or returned object with
 * `retryDelay` (ms) asks for that delay before the next attempt.
 */
export type JobProcessor = (job: ProcessableJob, context: ProcessorContext) => unknown | Promise<unknown>

/** Returned by a processor to finish its job as `completed_with_errors` (a batch where some items failed). */
export class CompletedWithErrors {
  constructor(readonly result: unknown) {}
}

export interface ProcessorOptions {
  concurrency?: number
  maxAttempts?: number
  backoff?: BackoffOptions
  /** ms; the attempt fails (and may retry) when it runs longer. A job's own `timeout` wins. */
  timeout?: number
}

export interface RegisteredProcessor {
  type: string
  handler: JobProcessor
  owner: string
  concurrency: number
  maxAttempts: number
  backoff: BackoffOptions
  timeout?: number
}

const optionsSchema = z.strictObject({
  concurrency: z.number().int().min(1).max(1000).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  backoff: z
    .strictObject({
      type: z.enum(['fixed', 'linear', 'exponential']),
      delay: z.number().int().min(0).max(MAX_TIMEOUT_MS),
      maxDelay: z.number().int().min(0).max(MAX_TIMEOUT_MS).optional(),
      jitter: z.number().min(0).max(1).optional(),
    })
    .optional(),
  timeout: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
})

export const DEFAULT_MAX_ATTEMPTS = 3

/** Processors by job type, registered by plugins at start. */
export class ProcessorRegistry {
  private readonly processors = new Map<string, RegisteredProcessor>()
  private readonly listeners = new Set<(type: string) => void>()

  register(type: string, handler: JobProcessor, options: ProcessorOptions = {}, owner = 'core'): void {
    if (!JOB_TYPE_PATTERN.test(type)) throw new ValidationError(`Invalid job type ${JSON.stringify(type)}.`)
    if (typeof handler !== 'function') throw new ValidationError('A job processor must be a function.')
    const parsed = optionsSchema.safeParse(options)
    if (!parsed.success) throw new ValidationError(`Invalid processor options: ${describeIssues(parsed.error)}`)
    if (this.processors.has(type)) throw new ValidationError(`A processor for ${JSON.stringify(type)} is already registered.`)
    const o = parsed.data
    this.processors.set(type, {
      type,
      handler,
      owner,
      concurrency: o.concurrency ?? Infinity,
      maxAttempts: o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      backoff: { ...(o.backoff ?? DEFAULT_BACKOFF) },
      timeout: o.timeout,
    })
    for (const listener of this.listeners) listener(type)
  }

  get(type: string): RegisteredProcessor | undefined {
    return this.processors.get(type)
  }

  has(type: string): boolean {
    return this.processors.has(type)
  }

  list(): RegisteredProcessor[] {
    return [...this.processors.values()]
  }

  onRegister(listener: (type: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
