import type { Clock } from '../clock.js'

/** Fixed-window counter per key, in memory; windows are pruned as they are touched. */
export class RateLimiter {
  private readonly windows = new Map<string, { startedAt: number; count: number }>()

  constructor(
    private readonly options: { limit: number; windowMs: number; clock: Clock; maxKeys?: number },
  ) {}

  /** Whether `key` has used up its hits in the current window (does not count one). */
  isBlocked(key: string): boolean {
    const window = this.windows.get(key)
    if (!window || this.options.clock.now() - window.startedAt >= this.options.windowMs) return false
    return window.count >= this.options.limit
  }

  /** Counts one hit for `key`; returns false when the key is over its limit. */
  hit(key: string): boolean {
    const now = this.options.clock.now()
    let window = this.windows.get(key)
    if (!window || now - window.startedAt >= this.options.windowMs) {
      if (this.windows.size >= (this.options.maxKeys ?? 100_000)) this.prune(now)
      window = { startedAt: now, count: 0 }
      this.windows.set(key, window)
    }
    window.count += 1
    return window.count <= this.options.limit
  }

  reset(key: string): void {
    this.windows.delete(key)
  }

  private prune(now: number) {
    for (const [key, window] of this.windows) {
      if (now - window.startedAt >= this.options.windowMs) this.windows.delete(key)
    }
    // Still full of live windows: forget the oldest rather than grow without bound.
    while (this.windows.size >= (this.options.maxKeys ?? 100_000)) {
      this.windows.delete(this.windows.keys().next().value!)
    }
  }
}
