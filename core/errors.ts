import type { ErrorCode } from './contract.js'

/** Base of every error Jobpost raises on purpose: a stable `code` and the HTTP status it maps to. */
export class JobpostError extends Error {
  readonly code: ErrorCode
  readonly status: number
  constructor(code: ErrorCode, message: string, status: number, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.status = status
  }
}

export class ValidationError extends JobpostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VALIDATION_FAILED', message, 400, options)
  }
}

export class UnauthenticatedError extends JobpostError {
  constructor(message = 'Authentication is required.') {
    super('UNAUTHENTICATED', message, 401)
  }
}

export class ForbiddenError extends JobpostError {
  constructor(message = 'You do not have the capability for this action.') {
    super('FORBIDDEN', message, 403)
  }
}

export class NotFoundError extends JobpostError {
  constructor(message = 'Not found.', code: ErrorCode = 'NOT_FOUND') {
    super(code, message, 404)
  }
}

export class JobNotFoundError extends NotFoundError {
  constructor(jobId: string) {
    super(`Job ${JSON.stringify(jobId)} was not found.`, 'JOB_NOT_FOUND')
  }
}

/** A state change the transition table does not allow; nothing was written. */
export class IllegalTransitionError extends JobpostError {
  constructor(
    readonly action: string,
    readonly from: string,
  ) {
    super('ILLEGAL_TRANSITION', `Cannot ${action} a job that is ${from}.`, 409)
  }
}

/** A settle carried a stale attempt token: another attempt owns the job now. */
export class LeaseLostError extends JobpostError {
  constructor(jobId: string) {
    super('LEASE_LOST', `The lease on job ${jobId} was lost to a newer attempt.`, 409)
  }
}

/** 409: a tracked job whose plugin passed no `onPause` to createJob cannot be paused. */
export class NotPausableError extends JobpostError {
  constructor(jobId: string) {
    super('NOT_PAUSABLE', `Job ${jobId} is driven by its plugin, which cannot pause it (no onPause was given to createJob).`, 409)
  }
}

/** 409: a tracked job that no processor can run cannot be retried (it would wait in pending forever). */
export class NotRetryableError extends JobpostError {
  constructor(jobId: string, type: string) {
    super('NOT_RETRYABLE', `Job ${jobId} cannot be retried: no processor runs jobs of type ${JSON.stringify(type)} (its plugin drove it).`, 409)
  }
}

export class ConflictError extends JobpostError {
  constructor(message: string) {
    super('CONFLICT', message, 409)
  }
}

/** 429: too many requests in a window. `retryAfterMs` becomes the `Retry-After` header. */
export class RateLimitedError extends JobpostError {
  readonly retryAfterMs: number
  constructor(message = 'Too many requests; try again later.', retryAfterMs = 1000) {
    super('RATE_LIMITED', message, 429)
    this.retryAfterMs = retryAfterMs
  }
}

/** 429: the owner already has as many pending jobs as allowed; retry once some have run. */
export class QuotaExceededError extends JobpostError {
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs = 60_000) {
    super('QUOTA_EXCEEDED', message, 429)
    this.retryAfterMs = retryAfterMs
  }
}

/** 400: an icon SVG too large or nested too deeply to be sanitised safely. */
export class InvalidSvgError extends JobpostError {
  constructor(message: string) {
    super('INVALID_SVG', message, 400)
  }
}

export class DatabaseUnavailableError extends JobpostError {
  constructor(options?: { cause?: unknown }) {
    super('DATABASE_UNAVAILABLE', 'The database is unavailable; try again shortly.', 503, options)
  }
}

/** Thrown by a processor to fail its job at once, without retries. */
export class UnrecoverableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UnrecoverableError'
  }
}

/**
 * Normalises anything thrown into an Error, once, at the boundary that caught it: null,
 * undefined, strings, numbers, objects whose getters throw and revoked proxies all become a
 * readable Error; reading the thrown value never throws.
 */
export function coerceError(thrown: unknown): Error {
  try {
    if (thrown instanceof Error) return thrown
  } catch {
    // a revoked proxy throws on instanceof
  }
  if (thrown === null) return new Error('The plugin threw null.')
  if (thrown === undefined) return new Error('The plugin threw undefined.')
  if (typeof thrown === 'string') return new Error(thrown || 'The plugin threw an empty string.')
  if (typeof thrown !== 'object' && typeof thrown !== 'function') return new Error(`The plugin threw ${typeof thrown} ${safeString(thrown)}.`)
  const message = readProperty(thrown, 'message')
  if (typeof message === 'string' && message) return new Error(message)
  try {
    const json = JSON.stringify(thrown)
    if (json && json !== '{}') return new Error(`The plugin threw ${json.slice(0, 1000)}`)
  } catch {
    // a getter threw, or it is circular
  }
  return new Error(`The plugin threw ${safeString(thrown)}.`)
}

/** A property of a thrown value, or undefined when reading it throws (hostile getters, proxies). */
export function readProperty(value: unknown, key: string): unknown {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return undefined
  try {
    return (value as Record<string, unknown>)[key]
  } catch {
    return undefined
  }
}

function safeString(value: unknown): string {
  try {
    return String(value).slice(0, 200)
  } catch {
    try {
      return Object.prototype.toString.call(value)
    } catch {
      return 'an unreadable value'
    }
  }
}
