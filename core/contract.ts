/**
 * The Jobpost contract: the types shared by the server, plugins and the admin UI.
 *
 * Glossary
 * - post:        a row of `posts`; every field beyond title/slug/status lives in `post_meta` rows.
 * - job:         a post of type `jobs`; its fields are meta rows. `jobId` is its UUID (the post slug).
 * - tracked job: a job a plugin drives itself through a JobHandle (start, updateProgress, complete...).
 * - queued job:  a job whose `type` has a registered processor; the runtime claims and runs it.
 * - attempt:     one run of a queued job; it holds a lease (`lockedUntil`) and an attempt token.
 * - settle:      moving a job out of `running` (complete, fail, retry, cancel).
 *
 * This file has no runtime dependencies so that `admin-ui/` can import it as-is.
 */

export const JOB_STATUSES = [
  'pending',
  'running',
  'paused',
  'completed',
  'completed_with_errors',
  'failed',
  'cancelled',
] as const
export type JobStatus = (typeof JOB_STATUSES)[number]

export const FINAL_STATUSES: readonly JobStatus[] = ['completed', 'completed_with_errors', 'failed', 'cancelled']
export const ACTIVE_STATUSES: readonly JobStatus[] = ['pending', 'running', 'paused']

export function isFinalStatus(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status)
}

/** The job object of the REST and WebSocket contract (`../shared/API.md`). Times are ISO-8601 UTC. */
export interface Job {
  id: number
  jobId: string
  name: string
  description: string
  type: string
  status: JobStatus
  progress: number
  iconSvg: string | null
  metadata: Record<string, unknown>
  result: unknown
  errorMessage: string | null
  source: string | null
  showNotification: boolean
  priority: number
  attempts: number
  maxAttempts: number
  runAt: string
  timeout: number | null
  createdBy: number | null
  createdAt: string
  updatedAt: string
  startedAt: string | null
  completedAt: string | null
  /** Parent job (a chain or batch) this job belongs to, when any. */
  parentJobId: string | null
  /**
   * Whether a pause would really happen (a queued job, or a tracked job whose plugin passed
   * `onPause`; else 409 NOT_PAUSABLE), and a retry (a queued job; a tracked one no processor runs
   * is 409 NOT_RETRYABLE). Clients offer only these actions. Present on every job the server sends.
   */
  pausable?: boolean
  retryable?: boolean
  /** In a list with `search` or `data.<path>` filters: where this job matched (at most 5). */
  matches?: SearchMatch[]
}

/**
 * Where a job matched a search: the field (and for data and result, the JSON path of the value;
 * `items[]` inside arrays), its text (cut to about 160 characters around the first hit) and the
 * [start, end) ranges of the matching words in that text, for highlighting.
 */
export interface SearchMatch {
  field: 'name' | 'description' | 'errorMessage' | 'data' | 'result'
  path?: string
  text: string
  ranges: [number, number][]
}

export interface JobListFilters {
  status?: JobStatus | JobStatus[]
  type?: string
  source?: string
  /**
   * Every word must match (a whole word or a word's prefix, case-insensitive) the name, description,
   * error message, or a value (not a key) of data or result. At most 200 characters and 10 words.
   */
  search?: string
  /**
   * `data.<path>=value` filters, path → value (at most 3; paths like `order.id`: segments of letters,
   * digits and `_`): the JSON value at that path of the job's data equals the text, or the number.
   */
  data?: Record<string, string | number>
  /** Only jobs created by this user id. */
  createdBy?: number
  parentJobId?: string
  /** `createdAt` (default `-createdAt`), `runAt`, `priority`, `completedAt`; `-` for descending. */
  sort?: JobSort
  limit?: number
  offset?: number
  /** Keyset paging: `nextCursor` of the previous page (instead of offset). */
  cursor?: string
}

export interface JobList {
  jobs: Job[]
  total: number
  limit: number
  offset: number
  /**
   * `total` is not an exact count: counting stopped at 10,000 matches, or (a search) where going
   * on would cost more than the page; at least `total` match.
   */
  totalCapped?: boolean
  /** Pass as `cursor` for the next page (present when the page is full). */
  nextCursor?: string
}


export interface JobStats {
  byStatus: Record<JobStatus, number>
  byType: Record<string, number>
  /** Per type, the count of each status it has. */
  byTypeAndStatus?: Record<string, Partial<Record<JobStatus, number>>>
  total: number
  /** Mean ms from startedAt to completedAt of the jobs that finished (completed, with errors, failed) in the last 24 h; null when none. */
  averageProcessingMs?: number | null
  /** How many jobs finished (completed, with errors, failed) in the last minute and hour. */
  throughput?: { lastMinute: number; lastHour: number }
  /** The Jobpost processes (servers and workers) on this database, from their heartbeats. */
  instances?: ClusterInstance[]
}

/** One running Jobpost process, as its heartbeat reports it. */
export interface ClusterInstance {
  /** The worker id (`host:pid:random`). */
  id: string
  host: string
  pid: number
  /** `server` serves HTTP (and may run jobs); `worker` only runs jobs. */
  role: 'server' | 'worker'
  startedAt: string
  lastSeen: string
  /** Seen within the last three heartbeats. */
  alive: boolean
  runningJobs: number
}

// ---------------------------------------------------------------------------------------------
// Errors: stable codes, shared by the envelope and the UI.

export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'INVALID_JSON',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'JOB_NOT_FOUND',
  'ILLEGAL_TRANSITION',
  'LEASE_LOST',
  'NOT_PAUSABLE',
  'NOT_RETRYABLE',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'INVALID_SVG',
  'DATABASE_UNAVAILABLE',
  'CONFLICT',
  'INTERNAL_ERROR',
] as const
export type ErrorCode = (typeof ERROR_CODES)[number]

export interface ApiError {
  code: ErrorCode
  message: string
}

export type ApiEnvelope<T> =
  | { success: true; data: T; meta?: { total: number; limit: number; offset: number } }
  | { success: false; error: ApiError }

// ---------------------------------------------------------------------------------------------
// Auth

export const CAPABILITIES = ['manage_jobs', 'read_jobs', 'create_jobs', 'delete_jobs'] as const
export type Capability = (typeof CAPABILITIES)[number]

export const ROLES = ['administrator', 'editor', 'subscriber'] as const
export type Role = (typeof ROLES)[number]

export interface PublicUser {
  id: number
  email: string
  roles: Role[]
  capabilities: Capability[]
}

// ---------------------------------------------------------------------------------------------
// Events: emitted on the hooks' event bus, and the source of WebSocket `job_update` messages.

export interface JobEventMap {
  'job:created': { job: Job }
  'job:started': { job: Job }
  'job:progress': { job: Job }
  'job:retry': { job: Job; error: string; delayMs: number }
  'job:completed': { job: Job }
  'job:failed': { job: Job; error: string }
  'job:cancelled': { job: Job }
  'job:paused': { job: Job }
  'job:resumed': { job: Job }
  'job:updated': { job: Job }
  'job:deleted': { jobId: string; createdBy: number | null }
}
export type JobEventName = keyof JobEventMap

/** Events that carry a job whose new state every client allowed to see it should get at once. */
export const JOB_CHANGE_EVENTS = [
  'job:created',
  'job:started',
  'job:retry',
  'job:completed',
  'job:failed',
  'job:cancelled',
  'job:paused',
  'job:resumed',
  'job:updated',
] as const satisfies readonly JobEventName[]

// ---------------------------------------------------------------------------------------------
// WebSocket messages

export type ServerMessage =
  | { type: 'connected' }
  | { type: 'job_update'; job: Job }
  | { type: 'job_deleted'; jobId: string }
  | { type: 'pong' }
  | { type: 'error'; error: ApiError }
  /** New lines of a job after `subscribe_logs` (issue 15). */
  | JobLogMessage
  /** A `subscribe_logs` refused: `code` NOT_FOUND (unknown or not visible), RATE_LIMITED (too many). */
  | { type: 'error'; code: ErrorCode; jobId: string | null; error: ApiError }

export type ClientMessage = { type: 'ping' } | LogSubscriptionMessage

// ---------------------------------------------------------------------------------------------
// Admin routes of issue 14 (and the shapes of issue 15's logs and attempts), as API.md gives them.

/** `sort` of GET /api/v1/jobs: a field, `-` first for descending. */
export const JOB_SORTS = ['createdAt', '-createdAt', 'runAt', '-runAt', 'priority', '-priority', 'completedAt', '-completedAt'] as const
export type JobSort = (typeof JOB_SORTS)[number]

/** POST /api/v1/jobs/bulk: an action on listed jobs or on every job matching a filter. */
export const BULK_ACTIONS = ['cancel', 'pause', 'resume', 'retry', 'delete'] as const
export type BulkAction = (typeof BULK_ACTIONS)[number]
export interface BulkFilter {
  status?: JobStatus | JobStatus[]
  type?: string
  source?: string
  search?: string
}
export type BulkRequest = { action: BulkAction; jobIds: string[] } | { action: BulkAction; filter: BulkFilter }
/** The `result` of the `bulk_action` job that does the work. */
export interface BulkOutcome {
  matched: number
  changed: number
  skipped: number
}

/** GET /api/v1/jobs/stats/series: one minute, oldest first. */
export interface StatsSeriesPoint {
  minute: string
  created: number
  completed: number
  failed: number
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
/** One line of GET /api/v1/jobs/:jobId/logs and of a `job_log` message. */
export interface JobLogLine {
  seq: number
  at: string
  level: LogLevel
  message: string
  fields: Record<string, unknown> | null
  attempt: number
}
/** WebSocket server → client, after `{"type":"subscribe_logs","jobId"}`. */
export interface JobLogMessage {
  type: 'job_log'
  jobId: string
  lines: JobLogLine[]
}
export type LogSubscriptionMessage = { type: 'subscribe_logs'; jobId: string } | { type: 'unsubscribe_logs'; jobId: string }

export const ATTEMPT_OUTCOMES = ['running', 'completed', 'failed', 'timeout', 'cancelled', 'paused', 'lease_expired', 'shutdown'] as const
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number]
/** One attempt of GET /api/v1/jobs/:jobId/attempts; `error` carries the message and the (trimmed) stack. */
export interface JobAttempt {
  attempt: number
  instance: string | null
  startedAt: string
  finishedAt: string | null
  durationMs: number | null
  outcome: AttemptOutcome
  error: string | { message: string; stack?: string | null; [key: string]: unknown } | null
}

// ---------------------------------------------------------------------------------------------
// Chains drawn as chains (issue 16): GET /api/v1/jobs/:jobId/chain

/** Where a step of a chain is: its job's status, or why it has no job. */
export type ChainStepState = JobStatus | 'waiting' | 'never_created'

/** One step of a chain, as the chain's detail draws it. */
export interface ChainStepView {
  index: number
  type: string
  name: string
  /** The step's job; null while it waits for the step before it, or when the chain ended first. */
  job: Job | null
  /** The job's status; `waiting`: not created yet; `never_created`: the chain ended before it. */
  state: ChainStepState
  /** startedAt → completedAt (or now, while it runs); null when it never started. */
  durationMs: number | null
  /** One line of its result (or its error), at most 120 characters. */
  summary: string | null
  /** Template links: the earlier steps whose output this step's payload reads, with the paths read. */
  uses: { step: number; path: string }[]
  /** The step that failed (or was cancelled) and so ended the chain. */
  failed: boolean
}

export interface ChainView {
  chain: Job
  steps: ChainStepView[]
  /** Index of the step that ended the chain, or null. */
  failedStep: number | null
}
