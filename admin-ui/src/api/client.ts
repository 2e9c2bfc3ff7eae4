import type { ApiEnvelope, ErrorCode, Job, JobStats, JobStatus, PublicUser } from '../contract'

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
}

export interface JobQuery {
  status?: readonly JobStatus[]
  type?: string
  source?: string
  search?: string
  limit?: number
  offset?: number
}

export type JobAction = 'cancel' | 'pause' | 'resume' | 'retry'

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
    async listJobs(query: JobQuery) {
      const { data, meta } = await request<Job[]>('GET', '/jobs', { query: jobQuery(query) })
      return { jobs: data, meta: meta ?? { total: data.length, limit: data.length, offset: 0 } }
    },
    async stats() {
      return (await request<JobStats>('GET', '/jobs/stats')).data
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
