import type {
  ApiEnvelope,
  BulkRequest,
  ChainView,
  ErrorCode,
  Job,
  JobAttempt,
  JobLogLine,
  JobSort,
  JobStats,
  JobStatus,
  PublicUser,
  StatsSeriesPoint,
} from '../contract'

/** An error answer of the API (or a network failure: status 0, code NETWORK_ERROR). */
export class ApiRequestError extends Error {
  readonly status: number
  readonly code: ErrorCode | 'NETWORK_ERROR'

  constructor(options: { status: number; code: ErrorCode | 'NETWORK_ERROR'; message: string; cause?: unknown }) {
    super(options.message, { cause: options.cause })
    this.name = 'ApiRequestError'
    this.status = options.status
    this.code = options.code
  }

  get isAuthFailure(): boolean {
    return this.status === 401
  }

  /** The server has no such route (an older server): the feature is hidden, not an error. */
  get isMissingRoute(): boolean {
    return this.status === 404 && this.code === 'NOT_FOUND'
  }
}

/** Whether `error` says the route does not exist on this server. */
export function isMissingRoute(error: unknown): boolean {
  return error instanceof ApiRequestError && error.isMissingRoute
}

/** The message of any thrown value, for the page. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

export interface ApiClientOptions {
  /** Origin of the server, '' for the page's own. */
  baseUrl?: string
  getToken: () => string | null
  /** Called once per 401 answer on an authenticated call (the token expired or was revoked). */
  onUnauthorized?: () => void
  fetch?: typeof fetch
}

export interface ListMeta {
  total: number
  limit: number
  offset: number
  /** With `search`: the total is exact up to 10,000, then capped. */
  totalCapped?: boolean
  nextCursor?: string | null
}

/** A cron schedule of GET /api/v1/schedules. */
export interface ScheduleRow {
  id: number
  name: string
  schedule: string
  timezone: string
  jobData: { type: string; name?: string; [key: string]: unknown }
  nextRunAt: string | null
  lastRunAt: string | null
  lastJobId: string | null
  owner: string | null
  createdAt: string
  updatedAt: string
}

export interface JobQuery {
  status?: readonly JobStatus[]
  type?: string
  source?: string
  search?: string
  sort?: JobSort
  limit?: number
  offset?: number
}

export type JobAction = 'cancel' | 'pause' | 'resume' | 'retry' | 'run-now'

export interface JobExport {
  job: Job
  items: Record<string, unknown>[]
  errors?: unknown[]
  [key: string]: unknown
}

export type ApiClient = ReturnType<typeof createApiClient>

/** A typed client of the REST contract (/work/shared/API.md); unwraps the envelope, throws ApiRequestError. */
export function createApiClient(options: ApiClientOptions) {
  const baseUrl = options.baseUrl ?? ''
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init))

  async function send(method: string, path: string, init: { query?: URLSearchParams; body?: unknown; auth?: boolean } = {}) {
    const headers: Record<string, string> = { Accept: 'application/json' }
    const token = options.getToken()
    if (init.auth !== false && token) headers.Authorization = `Bearer ${token}`
    if (init.body !== undefined) headers['Content-Type'] = 'application/json'
    const query = init.query?.toString()
    let response: Response
    try {
      response = await doFetch(`${baseUrl}/api/v1${path}${query ? `?${query}` : ''}`, {
        method,
        headers,
        // Live data: never an answer from a cache (happy-dom's, a proxy's or the browser's heuristics).
        cache: 'no-store',
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      })
    } catch (cause) {
      throw new ApiRequestError({ status: 0, code: 'NETWORK_ERROR', message: 'The server could not be reached.', cause })
    }
    if (response.status === 401 && init.auth !== false) options.onUnauthorized?.()
    return response
  }

  async function request<T>(method: string, path: string, init: { query?: URLSearchParams; body?: unknown; auth?: boolean } = {}) {
    const response = await send(method, path, init)
    let envelope: ApiEnvelope<T>
    try {
      envelope = (await response.json()) as ApiEnvelope<T>
    } catch (cause) {
      throw new ApiRequestError({ status: response.status, code: 'INTERNAL_ERROR', message: `Unexpected answer (HTTP ${response.status}).`, cause })
    }
    if (!envelope.success) throw new ApiRequestError({ status: response.status, ...envelope.error })
    return { data: envelope.data, meta: envelope.meta }
  }

  function jobQuery(query: JobQuery): URLSearchParams {
    const params = new URLSearchParams()
    if (query.status?.length) params.set('status', query.status.join(','))
    if (query.type) params.set('type', query.type)
    if (query.source) params.set('source', query.source)
    if (query.search) params.set('search', query.search)
    if (query.sort) params.set('sort', query.sort)
    if (query.limit !== undefined) params.set('limit', String(query.limit))
    if (query.offset !== undefined) params.set('offset', String(query.offset))
    return params
  }

  const jobPath = (jobId: string) => `/jobs/${encodeURIComponent(jobId)}`

  /** The export download (needs the bearer token, so it is fetched rather than linked). */
  async function exportJob(jobId: string, format: 'csv' | 'json') {
    const response = await send('GET', `${jobPath(jobId)}/export`, { query: new URLSearchParams({ format }) })
    if (!response.ok) {
      const envelope = (await response.json().catch(() => null)) as ApiEnvelope<never> | null
      const error = envelope && !envelope.success ? envelope.error : { code: 'INTERNAL_ERROR' as const, message: `Export failed (HTTP ${response.status}).` }
      throw new ApiRequestError({ status: response.status, ...error })
    }
    return { blob: await response.blob(), filename: `job-${jobId}.${format}` }
  }

  return {
    async login(email: string, password: string) {
      return (await request<{ token: string; user: PublicUser }>('POST', '/auth/login', { body: { email, password }, auth: false })).data
    },
    async logout() {
      await request<{ loggedOut: true }>('POST', '/auth/logout', { body: {} })
    },
    async me() {
      return (await request<{ user: PublicUser }>('GET', '/auth/me')).data.user
    },
    /** A short-lived, single-use ticket for the WebSocket upgrade (`/ws?ticket=`). */
    async wsTicket() {
      return (await request<{ ticket: string; expiresAt: string }>('POST', '/auth/ws-ticket', { body: {} })).data.ticket
    },
    /** What the caller's notification stack shows (active jobs, and finished ones not dismissed). */
    async notifications() {
      const { data, meta } = await request<Job[]>('GET', '/notifications')
      return { jobs: data, total: meta?.total ?? data.length }
    },
    async dismissNotification(jobId: string) {
      await request<unknown>('POST', `/notifications/${encodeURIComponent(jobId)}/dismiss`, { body: {} })
    },
    async dismissFinished() {
      await request<unknown>('POST', '/notifications/dismiss-finished', { body: {} })
    },
    /** → the id of the `bulk_action` job doing the work. */
    async bulk(body: BulkRequest) {
      return (await request<{ bulkJobId: string }>('POST', '/jobs/bulk', { body })).data.bulkJobId
    },
    async statsSeries(minutes = 60) {
      return (await request<StatsSeriesPoint[]>('GET', '/jobs/stats/series', { query: new URLSearchParams({ minutes: String(minutes) }) })).data
    },
    async attempts(jobId: string) {
      return (await request<JobAttempt[]>('GET', `${jobPath(jobId)}/attempts`)).data
    },
    async logs(jobId: string, query: { after?: number; limit?: number } = {}) {
      const params = new URLSearchParams()
      if (query.after !== undefined) params.set('after', String(query.after))
      if (query.limit !== undefined) params.set('limit', String(query.limit))
      const { data, meta } = await request<JobLogLine[]>('GET', `${jobPath(jobId)}/logs`, { query: params })
      return { lines: data, next: (meta as { next?: number } | undefined)?.next ?? data.at(-1)?.seq ?? query.after ?? null }
    },
    async schedules(query: { limit?: number; offset?: number } = {}) {
      const params = new URLSearchParams()
      if (query.limit !== undefined) params.set('limit', String(query.limit))
      if (query.offset !== undefined) params.set('offset', String(query.offset))
      const { data, meta } = await request<ScheduleRow[]>('GET', '/schedules', { query: params })
      return { schedules: data, total: meta?.total ?? data.length }
    },
    async listJobs(query: JobQuery) {
      const { data, meta } = await request<Job[]>('GET', '/jobs', { query: jobQuery(query) })
      return { jobs: data, meta: (meta as ListMeta | undefined) ?? { total: data.length, limit: data.length, offset: 0 } }
    },
    async stats() {
      return (await request<JobStats>('GET', '/jobs/stats')).data
    },
    /** The Queue view: pending jobs of a type in the order the runtime claims them (or the delayed ones). */
    async queue(query: { type: string; delayed?: boolean; limit?: number }) {
      const params = new URLSearchParams({ type: query.type })
      if (query.delayed) params.set('delayed', 'true')
      if (query.limit !== undefined) params.set('limit', String(query.limit))
      const { data, meta } = await request<Job[]>('GET', '/jobs/queue', { query: params })
      return { jobs: data, total: meta?.total ?? data.length }
    },
    /** Pending jobs claimed in exactly this order relative to each other (manage_jobs); → the jobs, moved. */
    async reorderJobs(jobIds: string[]) {
      return (await request<Job[]>('POST', '/jobs/reorder', { body: { jobIds } })).data
    },
    async setPriority(jobId: string, priority: number) {
      return (await request<Job>('POST', `${jobPath(jobId)}/priority`, { body: { priority } })).data
    },
    /** A chain's steps as its detail draws them. */
    async chain(jobId: string) {
      return (await request<ChainView>('GET', `${jobPath(jobId)}/chain`)).data
    },
    async getJob(jobId: string) {
      return (await request<Job>('GET', jobPath(jobId))).data
    },
    async jobAction(jobId: string, action: JobAction) {
      return (await request<Job>('POST', `${jobPath(jobId)}/${action}`, { body: {} })).data
    },
    async deleteJob(jobId: string) {
      await request<{ deleted: true }>('DELETE', jobPath(jobId))
    },
    async cleanup(daysOld: number) {
      const query = new URLSearchParams({ daysOld: String(daysOld) })
      return (await request<{ deleted: number }>('DELETE', '/jobs/cleanup', { query })).data.deleted
    },
    exportJob,
    async exportJson(jobId: string): Promise<JobExport> {
      const { blob } = await exportJob(jobId, 'json')
      return JSON.parse(await blob.text()) as JobExport
    },
  }
}
