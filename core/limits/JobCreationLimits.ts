import type { Clock } from '../clock.js'
import { QuotaExceededError, RateLimitedError } from '../errors.js'
import { KeyedLock } from './KeyedLock.js'
import type { RateBuckets } from './RateBuckets.js'

/**
 * Who creates jobs: a user over REST (keyed by user id, never by an address or a forwarded
 * header), or a plugin through its hooks (keyed by its slug).
 */
export type JobOwner = { kind: 'user'; userId: number } | { kind: 'plugin'; slug: string }

/** The pending jobs an owner has: a user's by `createdBy`, a plugin's by `source`. */
export type CountPending = (owner: { userId?: number; source?: string }) => Promise<number>

export interface OwnerLimits {
  /** Jobs created per minute (0 = no limit). */
  ratePerMinute: number
  /** Pending jobs at once (0 = no limit). */
  maxPending: number
}

export interface JobCreationLimitsOptions {
  buckets: RateBuckets
  clock: Clock
  countPending: CountPending
  user: OwnerLimits
  plugin: OwnerLimits
}

const MINUTE_MS = 60_000
/** How long a counted number of pending jobs (plus what was created since) is trusted. */
const PENDING_TTL_MS = 1000

/**
 * Limits job creation per owner (API.md, "Limits"): a rate per minute (429 RATE_LIMITED, shared
 * by every process on the database through RateBuckets) and a cap on pending jobs (429
 * QUOTA_EXCEEDED). The checks and the create of one owner run one at a time in a process, so
 * concurrent creates cannot all pass one check; it also means an owner flooding creates queues
 * behind itself rather than in front of everyone else's database work. Across processes the
 * rate is exact (one atomic UPSERT); the pending cap may be passed by at most one batch per
 * other process creating for the same owner at the same moment.
 */
export class JobCreationLimits {
  private readonly lock = new KeyedLock()
  /**
   * Per owner: pending jobs when last counted plus those created here since. Jobs leaving
   * `pending` only lower the true number, so below the cap no recount is needed; at the cap, or
   * after PENDING_TTL_MS (other processes, resumed or retried jobs), it is counted again. So a
   * flood of creates costs one count a second, not one per job.
   */
  private readonly pending = new Map<string, { count: number; countedAt: number }>()

  constructor(private readonly options: JobCreationLimitsOptions) {}

  /** Counts `count` new jobs for `owner` against its limits, then runs `create`. */
  admit<T>(owner: JobOwner, count: number, create: () => Promise<T>): Promise<T> {
    const limits = owner.kind === 'user' ? this.options.user : this.options.plugin
    const key = owner.kind === 'user' ? `jobs:user:${owner.userId}` : `jobs:plugin:${owner.slug}`
    if (count <= 0 || (limits.ratePerMinute <= 0 && limits.maxPending <= 0)) return create()
    const window = { limit: limits.ratePerMinute, windowMs: MINUTE_MS }
    // One creation per owner at a time in this process: concurrent creates cannot all pass one
    // check, and a flood from one owner waits behind itself, not in the database's queue in front
    // of everyone else's requests.
    return this.lock.run(key, async () => {
      if (limits.ratePerMinute > 0) {
        const decision = await this.options.buckets.take(key, window, count)
        if (!decision.allowed) {
          const who = owner.kind === 'user' ? 'this user' : `plugin "${owner.slug}"`
          throw new RateLimitedError(`Too many jobs created by ${who}: at most ${limits.ratePerMinute} a minute.`, decision.retryAfterMs)
        }
      }
      try {
        if (limits.maxPending > 0) {
          const pending = await this.pendingOf(owner, key, limits.maxPending - count)
          if (pending + count > limits.maxPending) {
            throw new QuotaExceededError(
              `${owner.kind === 'user' ? 'This user has' : `Plugin "${owner.slug}" has`} ${pending} pending jobs; at most ${limits.maxPending} may wait at once.`,
            )
          }
        }
        const created = await create()
        const known = this.pending.get(key)
        if (known) known.count += count
        return created
      } catch (error) {
        this.pending.delete(key)
        // Nothing was created: the hits go back (best effort; the window forgets them anyway).
        if (limits.ratePerMinute > 0) await this.options.buckets.refund(key, window, count).catch(() => undefined)
        throw error
      }
    })
  }

  /** The owner's pending jobs: the cached figure while it is fresh and leaves room, else a count. */
  private async pendingOf(owner: JobOwner, key: string, room: number): Promise<number> {
    const now = this.options.clock.now()
    const known = this.pending.get(key)
    if (known && now - known.countedAt < PENDING_TTL_MS && known.count <= room) return known.count
    const count = await this.options.countPending(owner.kind === 'user' ? { userId: owner.userId } : { source: owner.slug })
    if (this.pending.size >= 10_000) {
      for (const [k, entry] of this.pending) if (now - entry.countedAt >= PENDING_TTL_MS) this.pending.delete(k)
    }
    this.pending.set(key, { count, countedAt: now })
    return count
  }
}
