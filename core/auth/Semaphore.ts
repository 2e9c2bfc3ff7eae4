import { RateLimitedError } from '../errors.js'

/**
 * At most `concurrency` tasks at once; the rest wait in arrival order, at most `maxQueue` of them
 * (beyond that `run` rejects at once with 429, so a flood cannot build an unbounded queue).
 * Password hashing runs through one, so a burst of logins keeps a core free for everything else.
 */
export class Semaphore {
  private active = 0
  private readonly waiting: (() => void)[] = []

  constructor(private readonly options: { concurrency: number; maxQueue: number }) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.options.concurrency) {
      if (this.waiting.length >= this.options.maxQueue) {
        throw new RateLimitedError('The server is busy with other sign-ins; try again in a moment.', 1000)
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    } else {
      this.active += 1
    }
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      // The slot passes straight to the next waiter; `active` only drops when nobody waits.
      if (next) next()
      else this.active -= 1
    }
  }

  get running(): number {
    return this.active
  }

  get queued(): number {
    return this.waiting.length
  }
}
