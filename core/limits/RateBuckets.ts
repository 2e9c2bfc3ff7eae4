import type { Knex } from 'knex'
import type { Clock } from '../clock.js'

/** The answer of one `take`: whether the hits fit in the key's current window, and when it ends. */
export interface RateDecision {
  allowed: boolean
  /** Hits counted in the current window (including these when allowed). */
  count: number
  /** Until the current window ends. */
  retryAfterMs: number
}

export interface RateWindow {
  /** Hits allowed per window. */
  limit: number
  windowMs: number
}

/**
 * Fixed-window counters per key: `take` counts `cost` hits only if they still fit under the
 * limit, atomically (two concurrent takes never both get the last slot).
 */
export interface RateBuckets {
  take(key: string, window: RateWindow, cost?: number): Promise<RateDecision>
  /** Gives hits back (an attempt that turned out fine, or work that was not done). */
  refund(key: string, window: RateWindow, cost?: number): Promise<void>
  /** Forgets the key's current window. */
  reset(key: string, window: RateWindow): Promise<void>
}

function windowOf(now: number, windowMs: number) {
  const start = Math.floor(now / windowMs) * windowMs
  return { start, end: start + windowMs }
}

const PRUNE_EVERY_MS = 60_000

/**
 * Counters in the `rate_limits` table (migration 005), so every process on one database shares
 * them. A take is ONE statement, the same on SQLite (≥ 3.35) and PostgreSQL: insert the window's
 * row, or add to it only while the sum stays within the limit; no row back means "over the limit".
 * Expired windows are deleted at most once a minute per process, by the process that notices.
 */
export class SqlRateBuckets implements RateBuckets {
  private lastPruneAt = 0

  constructor(private readonly options: { knex: Knex; clock: Clock }) {}

  async take(key: string, window: RateWindow, cost = 1): Promise<RateDecision> {
    const now = this.options.clock.now()
    const { start, end } = windowOf(now, window.windowMs)
    const retryAfterMs = end - now
    if (cost > window.limit) return { allowed: false, count: 0, retryAfterMs }
    await this.pruneNow(now)
    const result = await this.options.knex.raw(
      `INSERT INTO rate_limits (bucket, window_start, hits, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + excluded.hits
       WHERE rate_limits.hits + excluded.hits <= ?
       RETURNING hits`,
      [key, start, cost, end, window.limit],
    )
    const rows = (Array.isArray(result) ? result : result.rows) as { hits: number | string }[]
    if (!rows.length) return { allowed: false, count: window.limit, retryAfterMs }
    return { allowed: true, count: Number(rows[0]!.hits), retryAfterMs }
  }

  async refund(key: string, window: RateWindow, cost = 1): Promise<void> {
    const { start } = windowOf(this.options.clock.now(), window.windowMs)
    await this.options.knex('rate_limits')
      .where({ bucket: key, window_start: start })
      .update({ hits: this.options.knex.raw('CASE WHEN hits > ? THEN hits - ? ELSE 0 END', [cost, cost]) })
  }

  async reset(key: string, window: RateWindow): Promise<void> {
    const { start } = windowOf(this.options.clock.now(), window.windowMs)
    await this.options.knex('rate_limits').where({ bucket: key, window_start: start }).delete()
  }

  private async pruneNow(now: number) {
    if (now - this.lastPruneAt < PRUNE_EVERY_MS) return
    this.lastPruneAt = now
    await this.options.knex('rate_limits').where('expires_at', '<=', now).delete()
  }
}

/** The same counters in this process only (tests, embedding without a database). */
export class MemoryRateBuckets implements RateBuckets {
  private readonly windows = new Map<string, { start: number; end: number; hits: number }>()

  constructor(private readonly options: { clock: Clock; maxKeys?: number }) {}

  async take(key: string, window: RateWindow, cost = 1): Promise<RateDecision> {
    const now = this.options.clock.now()
    const { start, end } = windowOf(now, window.windowMs)
    const id = `${window.windowMs}:${key}`
    let entry = this.windows.get(id)
    if (!entry || entry.start !== start) {
      if (this.windows.size >= (this.options.maxKeys ?? 100_000)) this.prune(now)
      entry = { start, end, hits: 0 }
      this.windows.set(id, entry)
    }
    if (entry.hits + cost > window.limit) return { allowed: false, count: entry.hits, retryAfterMs: end - now }
    entry.hits += cost
    return { allowed: true, count: entry.hits, retryAfterMs: end - now }
  }

  async refund(key: string, window: RateWindow, cost = 1): Promise<void> {
    const entry = this.windows.get(`${window.windowMs}:${key}`)
    if (entry && entry.start === windowOf(this.options.clock.now(), window.windowMs).start) entry.hits = Math.max(0, entry.hits - cost)
  }

  async reset(key: string, window: RateWindow): Promise<void> {
    this.windows.delete(`${window.windowMs}:${key}`)
  }

  private prune(now: number) {
    for (const [id, entry] of this.windows) if (entry.end <= now) this.windows.delete(id)
    while (this.windows.size >= (this.options.maxKeys ?? 100_000)) this.windows.delete(this.windows.keys().next().value!)
  }
}
