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
  countPending: CountPending
  user: OwnerLimits
  plugin: OwnerLimits
}

const MINUTE_MS = 60_000

/**
 * Limits job creation per owner (API.md, "Limits"): a rate per minute (429 RATE_LIMITED, shared
 * by every process on the database through RateBuckets) and a cap on pending jobs (429
 * QUOTA_EXCEEDED). The count-and-create of one owner runs one at a time in a process, so
 * concurrent creates cannot all pass one check; it also means an owner flooding creates queues
 * behind itself rather than in front of everyone else's database work.
 */
export class JobCreationLimits {
  private readonly lock = new KeyedLock()

  constructor(private readonly options: JobCreationLimitsOptions) {}

  /** Counts `count` new jobs for `owner` against its limits, then runs `create`. */
  async admit<T>(owner: JobOwner, count: number, create: () => Promise<T>): Promise<T> {
    const limits = owner.kind === 'user' ? this.options.user : this.options.plugin
    const key = owner.kind === 'user' ? `jobs:user:${owner.userId}` : `jobs:plugin:${owner.slug}`
    const who = owner.kind === 'user' ? 'this user' : `plugin "${owner.slug}"`
    if (count <= 0) return create()
    const window = { limit: limits.ratePerMinute, windowMs: MINUTE_MS }
    if (limits.ratePerMinute > 0) {
      const decision = await this.options.buckets.take(key, window, count)
      if (!decision.allowed) {
        throw new RateLimitedError(`Too many jobs created by ${who}: at most ${limits.ratePerMinute} a minute.`, decision.retryAfterMs)
      }
    }
    try {
      if (limits.maxPending <= 0) return await create()
      return await this.lock.run(key, async () => {
        const pending = await this.options.countPending(owner.kind === 'user' ? { userId: owner.userId } : { source: owner.slug })
        if (pending + count > limits.maxPending) {
          throw new QuotaExceededError(
            `${owner.kind === 'user' ? 'This user has' : `Plugin "${owner.slug}" has`} ${pending} pending jobs; at most ${limits.maxPending} may wait at once.`,
          )
        }
        return create()
      })
    } catch (error) {
      // Nothing was created: the hits go back (best effort; the window forgets them anyway).
      if (limits.ratePerMinute > 0) await this.options.buckets.refund(key, window, count).catch(() => undefined)
      throw error
    }
  }
}
