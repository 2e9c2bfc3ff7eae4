import { JOB_STATUSES, type JobStatus } from '../../contract.js'
import type { JobListQuery, JobState, JobStatePatch, NewJob, QueueQuery, StoredJob } from './JobStore.js'
import { queueOrderSql } from '../../registry/queueOrder.js'
import type { Dialect } from '../../db/createDatabase.js'
import { searchFilterSql, searchTerms, type SearchCheck } from './search/sql.js'

/**
 * SQL shared by both job stores: column names, row conversion, and the list query. Written with
 * `?` placeholders; the PostgreSQL store numbers them (`numbered`).
 */

export const STATE_COLUMNS = {
  postId: 'post_id',
  type: 'type',
  status: 'status',
  queued: 'queued',
  delayed: 'delayed',
  priority: 'priority',
  runAt: 'run_at',
  attempts: 'attempts',
  maxAttempts: 'max_attempts',
  attemptToken: 'attempt_token',
  lockedUntil: 'locked_until',
  progress: 'progress',
  timeoutMs: 'timeout_ms',
  showNotification: 'show_notification',
  createdBy: 'created_by',
  owner: 'owner',
  source: 'source',
  parentJobId: 'parent_job_id',
  pausedFrom: 'paused_from',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  startedAt: 'started_at',
  completedAt: 'completed_at',
} as const satisfies Record<keyof JobState, string>

type StateKey = keyof typeof STATE_COLUMNS
export const INSERT_COLUMNS = (Object.keys(STATE_COLUMNS) as StateKey[]).filter((key) => key !== 'postId')

/** `?` → `$1, $2, ...` (our SQL has no `?` inside literals). */
export function numbered(sql: string): string {
  let n = 0
  return sql.replace(/\?/g, () => `$${++n}`)
}

const num = (value: unknown): number => (typeof value === 'number' ? value : Number(value))
const numOrNull = (value: unknown): number | null => (value == null ? null : num(value))
const status = (value: unknown): JobStatus => (JOB_STATUSES.includes(value as JobStatus) ? (value as JobStatus) : 'pending')

/** A `job_state` row as either driver returns it (PostgreSQL gives bigints as text). */
export function stateFromRow(row: Record<string, unknown>): JobState {
  const completedAt = num(row.completed_at)
  return {
    postId: num(row.post_id),
    type: String(row.type),
    status: status(row.status),
    queued: num(row.queued) === 1,
    delayed: num(row.delayed) === 1,
    priority: num(row.priority),
    runAt: num(row.run_at),
    attempts: num(row.attempts),
    maxAttempts: num(row.max_attempts),
    attemptToken: (row.attempt_token as string | null) ?? null,
    lockedUntil: numOrNull(row.locked_until),
    progress: num(row.progress),
    timeoutMs: numOrNull(row.timeout_ms),
    showNotification: num(row.show_notification) !== 0,
    createdBy: numOrNull(row.created_by),
    owner: (row.owner as string | null) ?? null,
    source: (row.source as string | null) ?? null,
    parentJobId: (row.parent_job_id as string | null) ?? null,
    pausedFrom: row.paused_from == null ? null : status(row.paused_from),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    startedAt: numOrNull(row.started_at),
    completedAt: completedAt > 0 ? completedAt : null,
  }
}

/** A value as it is stored in its column. */
export function columnValue(key: StateKey, value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0
  if (key === 'completedAt') return value ?? 0
  return value ?? null
}

export function insertValues(job: NewJob): unknown[] {
  return INSERT_COLUMNS.map((key) => columnValue(key, job.state[key as keyof NewJob['state']]))
}

/** `SET a = ?, b = ?` of a patch, with its values. */
export function patchSql(patch: JobStatePatch): { sql: string; values: unknown[] } {
  const keys = (Object.keys(patch) as StateKey[]).filter((key) => patch[key as keyof JobStatePatch] !== undefined)
  return {
    sql: keys.map((key) => `${STATE_COLUMNS[key]} = ?`).join(', '),
    values: keys.map((key) => columnValue(key, patch[key as keyof JobStatePatch])),
  }
}

/** Conditions on meta values inside an UPDATE of job_state (see JobChange.metaEquals). */
export function metaFenceSql(metaEquals: Record<string, string | null> | undefined): { sql: string[]; values: unknown[] } {
  const sql: string[] = []
  const values: unknown[] = []
  for (const [key, value] of Object.entries(metaEquals ?? {})) {
    if (value === null) {
      sql.push('NOT EXISTS (SELECT 1 FROM post_meta f WHERE f.post_id = job_state.post_id AND f.meta_key = ?)')
      values.push(key)
    } else {
      sql.push('EXISTS (SELECT 1 FROM post_meta f WHERE f.post_id = job_state.post_id AND f.meta_key = ? AND f.meta_value = ?)')
      values.push(key, value)
    }
  }
  return { sql, values }
}

export function assemble(state: JobState, post: { slug: string; title: string }, meta: Record<string, string>): StoredJob {
  return { jobId: post.slug, name: post.title, state, meta }
}

const SORT_COLUMN = { createdAt: 'created_at', runAt: 'run_at', priority: 'priority', completedAt: 'completed_at' } as const

export function sortOf(sort: JobListQuery['sort']): { column: (typeof SORT_COLUMN)[keyof typeof SORT_COLUMN]; desc: boolean } {
  const desc = sort.startsWith('-')
  const key = (desc ? sort.slice(1) : sort) as keyof typeof SORT_COLUMN
  return { column: SORT_COLUMN[key], desc }
}

/** Escapes LIKE wildcards; the pattern is used with ESCAPE '\'. */
export function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/**
 * Filters of a list, as SQL over `job_state j` (search and data filters: the index of migration
 * 008, see search/). The statuses are not included: the list runs one index range per status (see `listSql`).
 */
export function filterSql(
  query: Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after' | 'statuses'>,
  dialect: Dialect = 'sqlite',
  /** PostgreSQL: how a search is checked (search/sql.ts searchFilterSql). */
  searchCheck: SearchCheck = 'set',
): { sql: string[]; values: unknown[]; needsPost: boolean } {
  const sql: string[] = []
  const values: unknown[] = []
  const needsPost = false
  if (query.type !== undefined) sql.push('j.type = ?'), values.push(query.type)
  if (query.createdBy !== undefined) sql.push('j.created_by = ?'), values.push(query.createdBy)
  if (query.parentJobId !== undefined) sql.push('j.parent_job_id = ?'), values.push(query.parentJobId)
  if (query.source) sql.push(`LOWER(j.source) LIKE ? ESCAPE '\\'`), values.push(likePattern(query.source))
  if (query.showNotification !== undefined) sql.push('j.show_notification = ?'), values.push(query.showNotification ? 1 : 0)
  if (query.completedAfter !== undefined) sql.push('j.completed_at > ?'), values.push(query.completedAfter)
  if (query.notDismissedBy !== undefined) {
    sql.push('NOT EXISTS (SELECT 1 FROM notification_dismissals nd WHERE nd.user_id = ? AND nd.post_id = j.post_id)')
    values.push(query.notDismissedBy)
  }
  const terms = searchTerms(query)
  if (terms) {
    // The full-text index of migration 008 (words, and data.<path> tokens checked exactly).
    const search = searchFilterSql(dialect, terms, searchCheck)
    sql.push(...search.sql), values.push(...search.values)
  }
  return { sql, values, needsPost }
}

/**
 * One page of a list: for each status, the first `offset + limit` rows of its index range in
 * sort order (an ordered index walk that stops early), merged by one outer ORDER BY. So a tab's
 * first page costs O(statuses × page), whatever the number of jobs.
 */
export function listSql(query: JobListQuery, dialect: Dialect = 'sqlite'): { sql: string; values: unknown[] } {
  const { column, desc } = sortOf(query.sort)
  const dir = desc ? 'DESC' : 'ASC'
  const statuses = query.statuses?.length ? query.statuses : JOB_STATUSES
  const filters = filterSql(query, dialect, 'perRow')
  const take = query.offset + query.limit
  const from = filters.needsPost ? 'job_state j JOIN posts p ON p.id = j.post_id' : 'job_state j'
  const branches: string[] = []
  const values: unknown[] = []
  statuses.forEach((status, index) => {
    const where = ['j.status = ?', ...filters.sql]
    const branchValues: unknown[] = [status, ...filters.values]
    if (query.after) {
      where.push(`(j.${column} ${desc ? '<' : '>'} ? OR (j.${column} = ? AND j.post_id ${desc ? '<' : '>'} ?))`)
      branchValues.push(query.after.value, query.after.value, query.after.postId)
    }
    branches.push(
      `SELECT * FROM (SELECT j.post_id AS post_id, j.${column} AS sort_value FROM ${from} WHERE ${where.join(' AND ')} ORDER BY j.${column} ${dir}, j.post_id ${dir} LIMIT ?) AS b${index}`,
    )
    values.push(...branchValues, take)
  })
  const sql = `${branches.join(' UNION ALL ')} ORDER BY sort_value ${dir}, post_id ${dir} LIMIT ? OFFSET ?`
  values.push(query.limit, query.offset)
  return { sql, values }
}

/** `SELECT COUNT(*)` of a list's matches, stopping at `cap`. */
export function countSql(
  query: Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>,
  cap: number,
  dialect: Dialect = 'sqlite',
  /** PostgreSQL: how a search is checked; by default row by row when other filters narrow the rows, else as a set. */
  searchCheck?: SearchCheck,
): { sql: string; values: unknown[] } {
  const narrowed = query.statuses?.length || query.type !== undefined || query.createdBy !== undefined || query.parentJobId !== undefined
  const filters = filterSql(query, dialect, searchCheck ?? (narrowed ? 'perRow' : 'set'))
  const from = filters.needsPost ? 'job_state j JOIN posts p ON p.id = j.post_id' : 'job_state j'
  const where = [...filters.sql]
  const values = [...filters.values]
  if (query.statuses?.length) {
    where.push(`j.status IN (${query.statuses.map(() => '?').join(', ')})`)
    values.push(...query.statuses)
  }
  values.push(cap)
  return {
    sql: `SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${from}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} LIMIT ?) AS capped`,
    values,
  }
}

/** Whether a list's total can come from the counters (filters they are kept by). */
export function countableByCounters(
  query: Pick<JobListQuery, 'source' | 'search' | 'dataFilters' | 'parentJobId' | 'showNotification' | 'completedAfter' | 'notDismissedBy'>,
): boolean {
  return (
    !query.source &&
    !query.search &&
    !query.dataFilters?.length &&
    query.parentJobId === undefined &&
    query.showNotification === undefined &&
    query.completedAfter === undefined &&
    query.notDismissedBy === undefined
  )
}

/** The counter scope of a job's owner. */
export function ownerScope(createdBy: number | null | undefined, source: string | null | undefined): string | null {
  if (createdBy != null) return `u:${createdBy}`
  if (source) return `p:${source}`
  return null
}

export function sortValueOf(state: JobState, sort: JobListQuery['sort']): number {
  const { column } = sortOf(sort)
  switch (column) {
    case 'created_at':
      return state.createdAt
    case 'run_at':
      return state.runAt
    case 'priority':
      return state.priority
    case 'completed_at':
      return state.completedAt ?? 0
    default: {
      const exhaustive: never = column
      return exhaustive
    }
  }
}

/**
 * The Queue view's page: pending queued jobs of one type, the due ones in queue order (the claim's
 * ORDER BY, along the claim index), the delayed ones by runAt; and their count up to `cap`.
 */
export function queueSql(
  query: QueueQuery,
  options: { namedIndex?: boolean } = {},
): { sql: string; values: unknown[]; countSql: string; countValues: unknown[] } {
  // `delayed` as a literal, so that the planner can use the partial claim (or delayed) index.
  const where = [`type = ?`, `status = 'pending'`, `queued = 1`, `delayed = ${query.delayed ? 1 : 0}`]
  const values: unknown[] = [query.type]
  if (query.createdBy !== undefined) where.push('created_by = ?'), values.push(query.createdBy)
  const order = query.delayed ? 'run_at, post_id' : queueOrderSql()
  // SQLite (`namedIndex`): the index is named, as a planner without statistics may prefer another.
  const table = options.namedIndex ? `job_state INDEXED BY ${query.delayed ? 'job_state_delayed_type_idx' : 'job_state_claim_idx'}` : 'job_state'
  return {
    sql: `SELECT post_id FROM ${table} WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ? OFFSET ?`,
    values: [...values, query.limit, query.offset],
    countSql: `SELECT COUNT(*) AS n FROM (SELECT 1 FROM job_state WHERE ${where.join(' AND ')} LIMIT ?) AS capped`,
    countValues: [...values, query.cap],
  }
}

/**
 * The fence of a reorder: a job it may move (pending, claimed by a processor, due: a delayed job
 * whose time has come but that no worker promoted yet is due too, and the reorder promotes it).
 */
export const REORDER_FENCE = `status = 'pending' AND queued = 1 AND run_at <= ?`
