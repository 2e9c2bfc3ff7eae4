export interface BackoffOptions {
  type: 'fixed' | 'linear' | 'exponential'
  /** Base delay in ms. */
  delay: number
  maxDelay?: number
  /** 0..1: the delay is reduced by up to this fraction, at random, to spread retries. */
  jitter?: number
}

/** The seed's default: 2 s, 4 s, 8 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { type: 'exponential', delay: 2000 }

/** A backoff without `maxDelay` never waits longer than this (1 hour) between attempts. */
export const DEFAULT_MAX_DELAY_MS = 3600_000
/** A `retryDelay` asked for by a processor is clamped to 0..this (7 days). */
export const MAX_RETRY_DELAY_MS = 7 * 24 * 3600_000

/** A delay asked for by plugin code, as a usable number of ms (undefined when it is not one). */
export function clampRetryDelay(value: unknown): number | undefined {
  if (typeof value !== 'number' || Number.isNaN(value)) return undefined
  return Math.round(Math.min(MAX_RETRY_DELAY_MS, Math.max(0, value)))
}

/** Delay before the next attempt, after `attemptsMade` attempts (1 after the first failure). */
export function backoffDelay(options: BackoffOptions, attemptsMade: number, random: () => number = Math.random): number {
  const n = Math.max(1, attemptsMade)
  let delay: number
  switch (options.type) {
    case 'fixed':
      delay = options.delay
      break
    case 'linear':
      delay = options.delay * n
      break
    case 'exponential':
      delay = options.delay * 2 ** (n - 1)
      break
    default: {
      const exhaustive: never = options.type
      throw new Error(`Unknown backoff ${String(exhaustive)}`)
    }
  }
  // Capped (2 ** n overflows to Infinity after ~1000 attempts; a date that far is no date).
  delay = Math.min(delay, options.maxDelay ?? DEFAULT_MAX_DELAY_MS)
  if (!Number.isFinite(delay)) delay = options.maxDelay ?? DEFAULT_MAX_DELAY_MS
  if (options.jitter) delay -= delay * Math.min(1, Math.max(0, options.jitter)) * random()
  return Math.max(0, Math.round(delay))
}
