import {
  ACTIVE_STATUSES,
  JOB_STATUSES,
  type Job,
  type JobList,
  type JobListFilters,
  type JobStats,
  type JobStatus,
  type StatsSeriesPoint,
} from '../contract.js'
import type { Clock } from '../clock.js'
import { ValidationError } from '../errors.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { JobStore } from '../store/jobs/JobStore.js'
import { countableByCounters, ownerScope } from '../store/jobs/jobSql.js'
import { parseDataFilters, parseSearch, type DataFilter } from '../store/jobs/search/query.js'
import { findMatches } from '../store/jobs/search/matches.js'
import { decodeCursor, encodeCursor } from './jobCursor.js'
import { jobRecordFromStored, toPublicJob, type JobRecord } from './jobRecord.js'

const MINUTE_MS = 60_000
const HOUR_MS = 3600_000
const DAY_MS = 24 * HOUR_MS

export const DEFAULT_LIST_LIMIT = 100
export const MAX_LIST_LIMIT = 500
/** A list's `total` is counted exactly up to this many matches when counters cannot tell it. */
export const MAX_COUNTED_TOTAL = 10_000
/** Notification stack: finished jobs that need attention stay this long unless dismissed. */
export const NOTIFY_FAILED_MS = 7 * DAY_MS
/** Completed jobs leave the stack this long after they complete. */
export const NOTIFY_COMPLETED_MS = 5000
export const NOTIFY_UNTIL_DISMISSED: JobStatus[] = ['failed', 'cancelled', 'completed_with_errors']

/**
 * The read side of RegisterJobs: one job, lists (filters, sort, offset or cursor, totals from the
 * counters or counted up to a cap), stats and series from the counters, the notification feed and
 * the Queue view. Every read goes through the job store; none is O(all jobs).
 */
export class JobQueries {
  protected readonly store: JobStore
  protected readonly hooks: HookRegistry
  protected readonly clock: Clock

  constructor(options: { store: JobStore; hooks: HookRegistry; clock: Clock }) {
    this.store = options.store
    this.hooks = options.hooks
    this.clock = options.clock
  }

  async getJobRecord(jobId: string): Promise<JobRecord | null> {
    if (typeof jobId !== 'string' || jobId.length > 64) return null
    const stored = await this.store.getByJobId(jobId)
    return stored ? jobRecordFromStored(stored) : null
  }

  /** Many jobs by jobId in one read (unknown ones left out), e.g. for events from other instances. */
  async getJobsByIds(jobIds: readonly string[]): Promise<Job[]> {
    const valid = jobIds.filter((jobId) => typeof jobId === 'string' && jobId.length <= 64)
    return (await this.store.getByJobIds(valid)).map((stored) => toPublicJob(jobRecordFromStored(stored)))
  }

  async getJob(jobId: string): Promise<Job | null> {
    const record = await this.getJobRecord(jobId)
    return record ? toPublicJob(record) : null
  }

  async getJobRecords(postIds: number[]): Promise<JobRecord[]> {
    return (await this.store.getByPostIds(postIds)).map(jobRecordFromStored)
  }

  /**
   * Filters in SQL before paging, newest first unless `sort` says otherwise; pages by `offset`
   * or by `cursor` (keyset). `total` comes from the counters where they can tell it, else it is
   * counted up to MAX_COUNTED_TOTAL (`totalCapped` past that).
   */
  async getJobs(filters: JobListFilters = {}): Promise<JobList> {
    const limit = filters.limit ?? DEFAULT_LIST_LIMIT
    const offset = filters.offset ?? 0
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new ValidationError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}.`)
    }
    if (!Number.isInteger(offset) || offset < 0) throw new ValidationError('offset must be a non-negative integer.')
    const statuses = filters.status === undefined ? [] : ([] as JobStatus[]).concat(filters.status)
    for (const status of statuses) {
      if (!JOB_STATUSES.includes(status)) throw new ValidationError(`Unknown status ${JSON.stringify(status)}.`)
    }
    const sort = filters.sort ?? '-createdAt'
    const after = filters.cursor === undefined ? undefined : decodeCursor(filters.cursor, sort)
    const query = {
      statuses: statuses.length ? [...new Set(statuses)] : undefined,
      type: filters.type || undefined,
      source: filters.source || undefined,
      search: filters.search?.trim() || undefined,
      dataFilters: dataFiltersOf(filters.data),
      createdBy: filters.createdBy,
      parentJobId: filters.parentJobId,
    }
    if (query.search !== undefined) parseSearch(query.search)
    const [page, counted] = await Promise.all([
      this.store.list({ ...query, sort, limit, offset: after ? 0 : offset, after }),
      this.total(query),
    ])
    const jobs = page.jobs.map(jobRecordFromStored)
    const last = page.jobs.at(-1)
    return {
      jobs: query.search !== undefined || query.dataFilters
        ? jobs.map((record) => ({ ...toPublicJob(record), matches: findMatches(record, query.search, query.dataFilters) }))
        : jobs.map(toPublicJob),
      // An incomplete count still knows the jobs up to this page.
      total: counted.capped ? Math.max(counted.total, Math.min(offset + jobs.length, MAX_COUNTED_TOTAL)) : counted.total,
      limit,
      offset: after ? 0 : offset,
      ...(counted.capped ? { totalCapped: true } : {}),
      ...(last && jobs.length === limit ? { nextCursor: encodeCursor(last.state, sort) } : {}),
    }
  }

  private async total(query: { statuses?: JobStatus[]; type?: string; source?: string; search?: string; dataFilters?: DataFilter[]; createdBy?: number; parentJobId?: string }): Promise<{ total: number; capped: boolean }> {
    if (countableByCounters(query)) {
      const rows = await this.store.counts(query.createdBy === undefined ? '' : `u:${query.createdBy}`)
      const total = rows
        .filter((row) => (query.type === undefined || row.type === query.type) && (!query.statuses || query.statuses.includes(row.status)))
        .reduce((sum, row) => sum + Number(row.n), 0)
      return { total, capped: false }
    }
    const { n, complete } = await this.store.count(query, MAX_COUNTED_TOTAL + 1)
    return n > MAX_COUNTED_TOTAL ? { total: MAX_COUNTED_TOTAL, capped: true } : { total: n, capped: !complete }
  }

  /** Counts from the counters (O(types)), timings and throughput from the per-minute counters. */
  async stats(filters: { createdBy?: number } = {}): Promise<JobStats> {
    const scope = filters.createdBy === undefined ? '' : `u:${filters.createdBy}`
    const now = this.clock.now()
    const [rows, minutes] = await Promise.all([this.store.counts(scope), this.store.minutes(scope, now - DAY_MS)])
    const byStatus = Object.fromEntries(JOB_STATUSES.map((status) => [status, 0])) as Record<JobStatus, number>
    const byType: Record<string, number> = {}
    const byTypeAndStatus: Record<string, Partial<Record<JobStatus, number>>> = {}
    for (const row of rows) {
      const n = Number(row.n)
      if (n <= 0) continue
      byStatus[row.status] = (byStatus[row.status] ?? 0) + n
      byType[row.type] = (byType[row.type] ?? 0) + n
      ;(byTypeAndStatus[row.type] ??= {})[row.status] = n
    }
    const total = Object.values(byStatus).reduce((sum, n) => sum + n, 0)
    let finished = 0
    let durationMs = 0
    let lastMinute = 0
    let lastHour = 0
    for (const row of minutes) {
      finished += row.finished
      durationMs += row.durationMs
      const processed = row.completed + row.failed
      if (row.minute + MINUTE_MS > now - MINUTE_MS) lastMinute += processed
      if (row.minute + MINUTE_MS > now - HOUR_MS) lastHour += processed
    }
    const stats: JobStats = {
      byStatus,
      byType,
      byTypeAndStatus,
      total,
      averageProcessingMs: finished ? Math.round(durationMs / finished) : null,
      throughput: { lastMinute, lastHour },
    }
    // Filtered so that other parts of the host can add to it (core/cluster adds `instances`).
    return this.hooks.applyFilters<JobStats>('jobs_stats', stats, filters)
  }

  /** Created, completed and failed per minute over the last `minutes`, oldest first. */
  async series(options: { minutes: number; createdBy?: number }): Promise<StatsSeriesPoint[]> {
    const now = this.clock.now()
    const end = Math.floor(now / MINUTE_MS) * MINUTE_MS
    const start = end - (options.minutes - 1) * MINUTE_MS
    const rows = await this.store.minutes(options.createdBy === undefined ? '' : `u:${options.createdBy}`, start)
    const byMinute = new Map(rows.map((row) => [row.minute, row]))
    const points: StatsSeriesPoint[] = []
    for (let minute = start; minute <= end; minute += MINUTE_MS) {
      const row = byMinute.get(minute)
      points.push({ minute: new Date(minute).toISOString(), created: row?.created ?? 0, completed: row?.completed ?? 0, failed: row?.failed ?? 0 })
    }
    return points
  }

  /**
   * What a user's notification stack shows: active jobs that notify, failed, cancelled and
   * partly failed ones of the last 7 days, completed ones of the last 5 s, none the user
   * dismissed; newest first. Three bounded index walks, merged.
   */
  async notifications(options: { userId: number; createdBy?: number; limit: number }): Promise<{ jobs: Job[]; total: number }> {
    const now = this.clock.now()
    const { limit } = options
    const base = { showNotification: true, notDismissedBy: options.userId, createdBy: options.createdBy, limit, offset: 0 }
    const parts = [
      { ...base, statuses: ACTIVE_STATUSES, sort: '-createdAt' as const },
      { ...base, statuses: NOTIFY_UNTIL_DISMISSED, completedAfter: now - NOTIFY_FAILED_MS, sort: '-completedAt' as const },
      { ...base, statuses: ['completed' as const], completedAfter: now - NOTIFY_COMPLETED_MS, sort: '-completedAt' as const },
    ]
    const pages = await Promise.all(parts.map((part) => this.store.list(part)))
    const totals = await Promise.all(
      pages.map(async (page, index) => (page.jobs.length < limit ? page.jobs.length : (await this.store.count(parts[index]!, MAX_COUNTED_TOTAL)).n)),
    )
    const jobs = pages
      .flatMap((page) => page.jobs)
      .sort((a, b) => b.state.createdAt - a.state.createdAt || b.state.postId - a.state.postId)
      .slice(0, limit)
      .map((stored) => toPublicJob(jobRecordFromStored(stored)))
    return { jobs, total: totals.reduce((sum, n) => sum + n, 0) }
  }

  /** Pending jobs of one owner (a user id or a plugin's source), from the counters. */
  async pendingCount(owner: { userId?: number; source?: string }): Promise<number> {
    const scope = ownerScope(owner.userId, owner.source)
    if (!scope) return 0
    const rows = await this.store.counts(scope)
    return rows.filter((row) => row.status === 'pending').reduce((sum, row) => sum + Number(row.n), 0)
  }

  /**
   * The Queue view: pending jobs of `type` that a processor will claim, the due ones in queue
   * order (the claim's), or the delayed ones by runAt. `total` is counted up to MAX_COUNTED_TOTAL.
   */
  async queue(options: { type: string; delayed?: boolean; createdBy?: number; limit?: number; offset?: number }): Promise<JobList> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT
    const offset = options.offset ?? 0
    const page = await this.store.listQueue({
      type: options.type,
      delayed: options.delayed ?? false,
      createdBy: options.createdBy,
      limit,
      offset,
      cap: MAX_COUNTED_TOTAL + 1,
    })
    return {
      jobs: page.jobs.map((stored) => toPublicJob(jobRecordFromStored(stored))),
      total: Math.min(page.total, MAX_COUNTED_TOTAL),
      limit,
      offset,
      ...(page.total > MAX_COUNTED_TOTAL ? { totalCapped: true } : {}),
    }
  }
}

/** `data.<path>=value` filters of a list (`{ 'order.id': 1042 }`), checked (at most 3, plain paths). */
function dataFiltersOf(data: JobListFilters['data']): DataFilter[] | undefined {
  if (data === undefined) return undefined
  if (!data || typeof data !== 'object') throw new ValidationError('data filters must be an object of path → value.')
  const filters = Object.entries(data).map(([path, value]) => {
    if (typeof value === 'number' && Number.isFinite(value)) return { path, value: String(value) }
    if (typeof value !== 'string') throw new ValidationError(`data.${path.slice(0, 60)} must be a string or a finite number.`)
    return { path, value }
  })
  return filters.length ? parseDataFilters(filters) : undefined
}
