import { Cron } from 'croner'
import { z } from 'zod'
import type { Clock } from '../clock.js'
import { NotFoundError, ValidationError, coerceError } from '../errors.js'
import type { Logger } from '../logger.js'
import { JOB_TYPE_PATTERN, describeIssues, parseOrThrow, pluginJobSchema } from '../registry/jobInput.js'
import { encodeJson } from '../registry/jobRecord.js'
import type { PostRecord, PostStore } from '../store/PostStore.js'

/**
 * Cron schedules. A schedule is a post of type `job_schedules` (slug = its name) whose meta holds
 * the cron pattern, the timezone, the job to enqueue and `next_run_at`. Every process may tick:
 * a tick claims a due run with a conditional update of `next_run_at` (from the value it read to the
 * next one), so across processes sharing the database exactly one enqueues each run. A run missed
 * while no process was up fires once at the next tick (no backfill of every missed run).
 */

export const SCHEDULE_POST_TYPE = 'job_schedules'
const DUE_BATCH = 100
export const DEFAULT_TICK_MS = 1000

const SM = {
  schedule: 'schedule',
  timezone: 'timezone',
  jobData: 'job_data',
  nextRunAt: 'next_run_at',
  lastRunAt: 'last_run_at',
  lastJobId: 'last_job_id',
  owner: 'owner',
} as const

export interface ScheduleJobData {
  type: string
  name?: string
  data?: unknown
  [field: string]: unknown
}

export interface ScheduleInput {
  /** Unique name; also the schedule post's slug. Scheduling an existing name updates it. */
  name: string
  /** Cron pattern (5 or 6 fields, croner syntax), e.g. `0 2 * * *`. */
  schedule: string
  /** IANA timezone the pattern is read in (default UTC). */
  timezone?: string
  /** What `enqueueJob` gets at every run (`type` required). */
  jobData: ScheduleJobData
}

export interface Schedule {
  id: number
  name: string
  schedule: string
  timezone: string
  jobData: ScheduleJobData
  nextRunAt: string | null
  lastRunAt: string | null
  lastJobId: string | null
  owner: string | null
  createdAt: string
  updatedAt: string
}

const SCHEDULE_NAME = /^[a-z0-9][a-z0-9_.:-]{0,99}$/i

const scheduleSchema = z.strictObject({
  name: z.string().regex(SCHEDULE_NAME, 'name must be 1-100 letters, digits, _ . : or -'),
  schedule: z.string().trim().min(9).max(200),
  timezone: z.string().min(1).max(100).optional(),
  jobData: z.looseObject({
    type: z.string().regex(JOB_TYPE_PATTERN, 'jobData.type must be 1-100 letters, digits, _ . : or -'),
  }),
})

/** The next run strictly after `afterMs`, or null when the pattern never fires again. */
export function nextRunAfter(pattern: string, timezone: string, afterMs: number): string | null {
  const next = new Cron(pattern, { timezone, paused: true }).nextRun(new Date(afterMs))
  return next ? next.toISOString() : null
}

function assertValidSchedule(pattern: string, timezone: string, nowMs: number): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone })
  } catch (cause) {
    throw new ValidationError(`Unknown timezone ${JSON.stringify(timezone)}.`, { cause })
  }
  try {
    return nextRunAfter(pattern, timezone, nowMs)
  } catch (cause) {
    throw new ValidationError(`Invalid cron pattern ${JSON.stringify(pattern)}: ${coerceError(cause).message}`, { cause })
  }
}

export interface SchedulerOptions {
  store: PostStore
  clock: Clock
  logger: Logger
  /** Enqueues one run's job; returns its jobId. */
  enqueue(jobData: ScheduleJobData, context: { owner: string | null; scheduleName: string; scheduledFor: string }): Promise<string>
  tickIntervalMs?: number
}

export class Scheduler {
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<number> | undefined

  constructor(private readonly options: SchedulerOptions) {}

  /** Creates or updates a schedule. Its next run is kept when the pattern and timezone are unchanged. */
  async schedule(input: ScheduleInput, owner: string | null = null): Promise<Schedule> {
    const parsed = parseOrThrow(scheduleSchema, input)
    const timezone = parsed.timezone ?? 'UTC'
    const now = this.options.clock.now()
    const nextRunAt = assertValidSchedule(parsed.schedule, timezone, now)
    const jobData = { ...parsed.jobData } as ScheduleJobData
    const asJob = pluginJobSchema.safeParse({ ...jobData, name: jobData.name ?? jobData.type })
    if (!asJob.success) throw new ValidationError(`jobData: ${describeIssues(asJob.error)}`)
    const meta: Record<string, string> = {
      [SM.schedule]: parsed.schedule,
      [SM.timezone]: timezone,
      [SM.jobData]: encodeJson(jobData),
    }
    if (owner) meta[SM.owner] = owner
    const { store } = this.options
    const nowIso = new Date(now).toISOString()
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await store.getPostBySlug(SCHEDULE_POST_TYPE, parsed.name)
      if (existing) {
        const read = existing.meta[SM.nextRunAt]
        const unchanged = existing.meta[SM.schedule] === parsed.schedule && existing.meta[SM.timezone] === timezone
        // A conditional write: only while the schedule is as read. An unchanged schedule keeps its
        // next run untouched (a tick of another process may be moving it right now: writing back
        // the value read would fire that run twice); a changed one moves it only from the value read.
        const updated = await store.updatePost(existing.id, {
          meta: unchanged && read ? meta : { ...meta, [SM.nextRunAt]: nextRunAt },
          expect: [
            read === undefined ? { key: SM.nextRunAt, exists: false } : { key: SM.nextRunAt, eq: read },
            ...(existing.meta[SM.schedule] === undefined ? [] : [{ key: SM.schedule, eq: existing.meta[SM.schedule]! }]),
            ...(existing.meta[SM.timezone] === undefined ? [] : [{ key: SM.timezone, eq: existing.meta[SM.timezone]! }]),
          ],
          updatedAt: nowIso,
        })
        if (updated) return toSchedule(updated)
        continue // it changed between the read and the write: read it again
      }
      try {
        const id = await store.createPost({
          postType: SCHEDULE_POST_TYPE,
          title: parsed.name,
          slug: parsed.name,
          createdAt: nowIso,
          meta: nextRunAt ? { ...meta, [SM.nextRunAt]: nextRunAt } : meta,
        })
        return toSchedule((await store.getPost(id))!)
      } catch (error) {
        // Another process created it first (unique type+slug): update it instead.
        if (await store.findPostId(SCHEDULE_POST_TYPE, parsed.name)) continue
        throw error
      }
    }
    throw new ValidationError(`Schedule ${JSON.stringify(parsed.name)} kept changing; try again.`)
  }

  /** Removes a schedule; returns whether it existed. */
  async unschedule(name: string): Promise<boolean> {
    if (typeof name !== 'string' || !SCHEDULE_NAME.test(name)) return false
    const id = await this.options.store.findPostId(SCHEDULE_POST_TYPE, name)
    if (id == null) return false
    return (await this.options.store.deletePosts([id])) === 1
  }

  async get(name: string): Promise<Schedule> {
    const post = SCHEDULE_NAME.test(name) ? await this.options.store.getPostBySlug(SCHEDULE_POST_TYPE, name) : null
    if (!post) throw new NotFoundError(`Schedule ${JSON.stringify(name)} was not found.`)
    return toSchedule(post)
  }

  async list(options: { limit: number; offset: number }): Promise<{ schedules: Schedule[]; total: number }> {
    const { ids, total } = await this.options.store.queryPostIds({
      postType: SCHEDULE_POST_TYPE,
      order: 'oldest',
      limit: options.limit,
      offset: options.offset,
    })
    return { schedules: (await this.options.store.getPosts(ids)).map(toSchedule), total }
  }

  /**
   * Fires every due schedule once. Each run is claimed by moving `next_run_at` from the value read
   * to the next one only while it still holds the value read; only the winner enqueues. Returns
   * how many runs this process enqueued. Concurrent calls share one tick.
   */
  tick(): Promise<number> {
    this.ticking ??= this.runTick().finally(() => {
      this.ticking = undefined
    })
    return this.ticking
  }

  private async runTick(): Promise<number> {
    const { store, clock, logger } = this.options
    const nowMs = clock.now()
    const now = new Date(nowMs).toISOString()
    const ids = await store.findPostIds({
      postType: SCHEDULE_POST_TYPE,
      where: [{ key: SM.nextRunAt, lte: now }],
      limit: DUE_BATCH,
    })
    let fired = 0
    for (const post of await store.getPosts(ids)) {
      const dueAt = post.meta[SM.nextRunAt]
      if (!dueAt || dueAt > now) continue
      let next: string | null
      try {
        next = nextRunAfter(post.meta[SM.schedule] ?? '', post.meta[SM.timezone] ?? 'UTC', nowMs)
      } catch (error) {
        logger.error({ err: error, schedule: post.slug }, 'A schedule has an invalid pattern; it is disabled')
        next = null
      }
      const claimed = await store.updatePost(post.id, {
        meta: { [SM.nextRunAt]: next, [SM.lastRunAt]: dueAt },
        expect: [{ key: SM.nextRunAt, eq: dueAt }],
        updatedAt: now,
      })
      if (!claimed) continue // another process fired this run
      try {
        const jobData = JSON.parse(post.meta[SM.jobData] ?? 'null') as ScheduleJobData
        const jobId = await this.options.enqueue(jobData, {
          owner: post.meta[SM.owner] ?? null,
          scheduleName: post.slug,
          scheduledFor: dueAt,
        })
        await store.updatePost(post.id, { meta: { [SM.lastJobId]: jobId }, updatedAt: now })
        fired++
      } catch (error) {
        // At most once: the run is claimed; a failed enqueue is logged, not repeated.
        logger.error({ err: error, schedule: post.slug, scheduledFor: dueAt }, 'A scheduled run could not be enqueued')
      }
    }
    return fired
  }

  /** Ticks every `tickIntervalMs` (unref'd) until `stop()`. */
  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => {
      this.tick().catch((error) => this.options.logger.error({ err: error }, 'Schedule tick failed'))
    }, this.options.tickIntervalMs ?? DEFAULT_TICK_MS)
    this.timer.unref()
  }

  /** Stops the timer and waits for a tick under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.ticking?.catch(() => undefined)
  }
}

function toSchedule(post: PostRecord): Schedule {
  let jobData: ScheduleJobData = { type: '' }
  try {
    jobData = JSON.parse(post.meta[SM.jobData] ?? '{}') as ScheduleJobData
  } catch {
    /* an unreadable payload lists as an empty one */
  }
  return {
    id: post.id,
    name: post.slug,
    schedule: post.meta[SM.schedule] ?? '',
    timezone: post.meta[SM.timezone] ?? 'UTC',
    jobData,
    nextRunAt: post.meta[SM.nextRunAt] ?? null,
    lastRunAt: post.meta[SM.lastRunAt] ?? null,
    lastJobId: post.meta[SM.lastJobId] ?? null,
    owner: post.meta[SM.owner] ?? null,
    createdAt: post.createdAt,
    updatedAt: post.updatedAt,
  }
}
