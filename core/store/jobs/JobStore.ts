import type { JobSort, JobStatus } from '../../contract.js'
import type { Dialect } from '../../db/createDatabase.js'
import type { DataFilter } from './search/query.js'

/**
 * The job queue's storage: one small interface with a SQLite and a PostgreSQL implementation
 * (`SqliteJobStore`, `PostgresJobStore`), each statement prepared once, each move one statement
 * or one transaction, and one conformance suite (tests/jobStore.conformance.test.ts) for both.
 *
 * A job is a post of type `jobs` (slug = jobId, title = name) with a typed `job_state` row for
 * what the queue filters, sorts and fences on, and meta rows for the rest (description, icon,
 * metadata, data, result, error, checkpoint, plugin fields). Times are ms since the epoch.
 */

/** The typed row of a job (`job_state`). */
export interface JobState {
  postId: number
  type: string
  status: JobStatus
  /** A processor runs it (else a plugin drives it through a handle: a tracked job). */
  queued: boolean
  /** Pending but not due yet: waits in the delayed index until `promoteDue` moves it. */
  delayed: boolean
  priority: number
  runAt: number
  attempts: number
  maxAttempts: number
  attemptToken: string | null
  lockedUntil: number | null
  progress: number
  timeoutMs: number | null
  showNotification: boolean
  createdBy: number | null
  /** Counter scope of the job's owner: `u:<user id>`, else `p:<source>`, else null. */
  owner: string | null
  source: string | null
  parentJobId: string | null
  pausedFrom: JobStatus | null
  createdAt: number
  updatedAt: number
  startedAt: number | null
  /** null while unfinished (stored as 0). */
  completedAt: number | null
}

/** Everything stored of a job. */
export interface StoredJob {
  jobId: string
  name: string
  state: JobState
  meta: Record<string, string>
}

export interface NewJob {
  jobId: string
  name: string
  state: Omit<JobState, 'postId'>
  meta: Record<string, string>
}

/** Columns a change may set (everything but the key and what never changes after creation). */
export type JobStatePatch = Partial<Omit<JobState, 'postId' | 'type' | 'createdBy' | 'owner' | 'source' | 'createdAt'>>

/** Meta writes: `null` removes the key. */
export type MetaPatch = Record<string, string | null>

/**
 * A fenced change of one job: written only while the job has one of the `from` statuses (and,
 * when given, the attempt token and an expired lease). Nothing is read back: the caller knows
 * what it wrote.
 */
export interface JobChange {
  postId: number
  from: readonly JobStatus[]
  /** The attempt token the job must hold (a settle or renewal of that attempt). */
  token?: string
  /** The lease must have run out before this time (recovery). */
  lockedBefore?: number
  set: JobStatePatch
  meta?: MetaPatch
  /** Meta keys that must hold these values (null: be absent), e.g. a workflow's cursor. */
  metaEquals?: Record<string, string | null>
}

/** A runtime completion, fenced by `running` and its attempt token (group-committed). */
export interface JobCompletion {
  postId: number
  token: string
  status: 'completed' | 'completed_with_errors'
  /** The result as JSON, or null for none (a null or undefined result: no meta row). */
  result: string | null
  /** The job has an error message from an earlier attempt, to remove. */
  clearError: boolean
  now: number
}

export interface ClaimRequest {
  /** Per type, how many this worker may start now. */
  slots: [type: string, count: number][]
  /** At most this many in all. */
  limit: number
  now: number
  leaseMs: number
}

export type { JobSort }

export interface JobListQuery {
  statuses?: readonly JobStatus[]
  type?: string
  /** Part of the source (case-insensitive). */
  source?: string
  /**
   * Every word must match a word or a word's prefix of the name, description, error message, or
   * a value of data or result (the full-text index, search/); limits in search/query.ts.
   */
  search?: string
  /** `data.<path>=value` filters (at most 3): the value at the path equals the text, or the number. */
  dataFilters?: readonly DataFilter[]
  createdBy?: number
  parentJobId?: string
  /** Notification feeds: only jobs that notify, finished after a time, not dismissed by a user. */
  showNotification?: boolean
  completedAfter?: number
  notDismissedBy?: number
  sort: JobSort
  limit: number
  offset: number
  /** Keyset paging: the sort value and post id of the last row of the previous page. */
  after?: { value: number; postId: number }
}

export interface JobListPage {
  jobs: StoredJob[]
  /** Exact total, or null when only counting would tell (the caller counts, capped). */
  total: number | null
}

export interface CountResult {
  n: number
  /** False: counting stopped early (a search over its budget); at least `n` match. */
  complete: boolean
}

export interface CountRow {
  type: string
  status: JobStatus
  n: number
}

export interface MinuteRow {
  minute: number
  created: number
  completed: number
  failed: number
  finished: number
  durationMs: number
}

/** Pending queued jobs of one type, for the admin's Queue view (see core/registry/queueOrder.ts). */
export interface QueueQuery {
  type: string
  /** false: the due ones, in queue order (the claim's); true: the delayed ones, by runAt. */
  delayed: boolean
  createdBy?: number
  limit: number
  offset: number
  /** `total` stops counting here. */
  cap: number
}

/** New priority and runAts for listed jobs (core/registry/reorderJobs.ts). */
export interface ReorderRequest {
  postIds: number[]
  priority: number
  /** One per post id, same order. */
  runAts: number[]
  now: number
}

/** Either every listed job changed, or none did (and `postId` is the first that was not movable). */
export type ReorderOutcome = { ok: true; states: JobState[] } | { ok: false; postId: number }

export interface JobStore {
  readonly dialect: Dialect
  /** Sees every statement with its parameters (tests explain their plans); unset in production. */
  trace?: (sql: string, values: unknown[]) => void
  /** Creates jobs (post, typed row, meta) in one transaction; post ids in order. */
  insert(jobs: NewJob[]): Promise<number[]>
  getByJobId(jobId: string): Promise<StoredJob | null>
  getByPostIds(postIds: readonly number[]): Promise<StoredJob[]>
  /** Many jobs by jobId in one read (unknown ids are left out). */
  getByJobIds(jobIds: readonly string[]): Promise<StoredJob[]>
  list(query: JobListQuery): Promise<JobListPage>
  /**
   * How many jobs match, at most `cap`. A search may stop before it knows (`complete: false`,
   * then at least `n` match) when counting further would cost more than a page is allowed to.
   */
  count(query: Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>, cap: number): Promise<CountResult>
  /** Counters of one scope (`''` all jobs, `u:<id>`, `p:<source>`): O(types × statuses). */
  counts(scope: string): Promise<CountRow[]>
  /** Per-minute created/finished counters of one scope since `since` (ms), oldest first. */
  minutes(scope: string, since: number): Promise<MinuteRow[]>
  /** Due jobs become running with a fresh attempt token and a lease; atomic and exclusive. */
  claim(request: ClaimRequest): Promise<StoredJob[]>
  /** Moves delayed jobs whose time has come into the claimable index; returns the next due time. */
  promoteDue(now: number): Promise<{ promoted: number; nextDueAt: number | null }>
  /** One fenced change; the job's new typed row, or null when the fence did not hold. */
  change(change: JobChange, now: number): Promise<JobState | null>
  /**
   * A fenced change and new jobs in one transaction: the jobs are created only if the change held
   * (a chain moves its cursor and creates its next step, or neither happens).
   */
  changeAndInsert(change: JobChange, jobs: NewJob[], now: number): Promise<{ state: JobState; postIds: number[] } | null>
  /** Completions of one event-loop turn, one transaction; the new rows (null: fence failed). */
  complete(completions: JobCompletion[]): Promise<(JobState | null)[]>
  /** Extends the leases of running attempts holding these tokens; returns their post ids. */
  renewLeases(tokens: readonly string[], until: number, now: number): Promise<number[]>
  /** Running jobs whose lease ran out before `now`, oldest first. */
  expiredLeases(now: number, limit: number): Promise<StoredJob[]>
  /** Deletes one job while it has one of `statuses`. */
  deleteIf(postId: number, statuses: readonly JobStatus[]): Promise<boolean>
  /** Deletes up to `limit` finished jobs that completed before `cutoff`; returns how many. */
  deleteFinishedBefore(cutoff: number, limit: number): Promise<number>
  /** Pending queued jobs of a type in queue order (due) or by runAt (delayed); total counted up to `cap`. */
  listQueue(query: QueueQuery): Promise<{ jobs: StoredJob[]; total: number }>
  /**
   * One transaction: every listed job takes `priority` and its runAt, but only if each one is still
   * pending, queued and due; otherwise nothing changes.
   */
  reorder(request: ReorderRequest): Promise<ReorderOutcome>
  /** Housekeeping (PostgreSQL: folds counter deltas). Cheap; call every second or so. */
  maintain(): Promise<void>
  close(): Promise<void>
}

export const FINAL_STATUSES_LIST: readonly JobStatus[] = ['completed', 'completed_with_errors', 'failed', 'cancelled']
