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
  if (options.maxDelay !== undefined) delay = Math.min(delay, options.maxDelay)
  if (options.jitter) delay -= delay * Math.min(1, Math.max(0, options.jitter)) * random()
  return Math.max(0, Math.round(delay))
}
