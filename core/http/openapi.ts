import { z } from 'zod'
import { CAPABILITIES, ERROR_CODES, JOB_STATUSES } from '../contract.js'
import { jobFieldsSchema } from '../registry/jobInput.js'

type Json = Record<string, unknown>

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const envelope = (data: Json, list = false): Json => ({
  type: 'object',
  required: ['success', 'data'],
  properties: {
    success: { const: true },
    data,
    ...(list ? { meta: ref('ListMeta') } : {}),
  },
})
const ok = (description: string, data: Json, list = false) => ({
  description,
  content: { 'application/json': { schema: envelope(data, list) } },
})
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [String(status), { $ref: `#/components/responses/E${status}` }]))
const jobIdParam = { name: 'jobId', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }
const secured = { security: [{ bearer: [] }] }

const jobSchema: Json = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    jobId: { type: 'string', format: 'uuid' },
    name: { type: 'string' },
    description: { type: 'string' },
    type: { type: 'string' },
    status: { enum: [...JOB_STATUSES] },
    progress: { type: 'integer', minimum: 0, maximum: 100 },
    iconSvg: { type: ['string', 'null'], description: 'Sanitised on the server; show only as <img src="data:image/svg+xml;base64,...">.' },
    metadata: { type: 'object' },
    result: {},
    errorMessage: { type: ['string', 'null'] },
    source: { type: ['string', 'null'] },
    showNotification: { type: 'boolean' },
    priority: { type: 'integer', description: 'Higher runs first.' },
    attempts: { type: 'integer' },
    maxAttempts: { type: 'integer' },
    runAt: { type: 'string', format: 'date-time' },
    timeout: { type: ['integer', 'null'], description: 'ms' },
    createdBy: { type: ['integer', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    startedAt: { type: ['string', 'null'], format: 'date-time' },
    completedAt: { type: ['string', 'null'], format: 'date-time' },
    parentJobId: { type: ['string', 'null'], format: 'uuid', description: 'The chain or batch this job belongs to.' },
    pausable: { type: 'boolean', description: 'A pause would happen: a queued job, or a tracked job whose plugin passed onPause (else 409 NOT_PAUSABLE).' },
    retryable: { type: 'boolean', description: 'A retry would run it: a queued job (a tracked job no processor runs: 409 NOT_RETRYABLE).' },
  },
}

const ERROR_STATUSES: Record<number, string> = {
  400: 'Invalid input (VALIDATION_FAILED, INVALID_JSON)',
  401: 'No or bad credentials (UNAUTHENTICATED)',
  403: 'Lacking capability (FORBIDDEN)',
  404: 'Not found, or not visible to the caller',
  409: 'Illegal state change (ILLEGAL_TRANSITION; NOT_PAUSABLE: a tracked job without onPause; NOT_RETRYABLE: a tracked job no processor runs)',
  413: 'Body too large',
  415: 'Body is not JSON',
  429: 'Too many requests',
  503: 'Database unavailable',
}

/**
 * The OpenAPI 3.1 document of the whole API. Providers add their paths through the
 * `openapi_document` filter (see JobsController, SchedulesController).
 */
export function baseOpenApiDocument(): Json {
  const createJob = z.toJSONSchema(jobFieldsSchema, { io: 'input', unrepresentable: 'any' })
  return {
    openapi: '3.1.0',
    info: {
      title: 'Jobpost API',
      version: '1',
      description:
        'Jobs are posts. Every route except login and this document needs `Authorization: Bearer <token>`. ' +
        `Capabilities: ${CAPABILITIES.join(', ')}; users without read_jobs see only their own jobs. ` +
        'WebSocket at /ws (bearer header or ?ticket= from POST /auth/ws-ticket): messages connected, ' +
        'job_update {job}, job_deleted {jobId}, pong; progress coalesced to at most 10/s per job.',
    },
    servers: [{ url: '/api/v1' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Job: jobSchema,
        CreateJob: createJob,
        ListMeta: { type: 'object', properties: { total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' } } },
        Error: {
          type: 'object',
          required: ['success', 'error'],
          properties: {
            success: { const: false },
            error: { type: 'object', properties: { code: { enum: [...ERROR_CODES] }, message: { type: 'string' } } },
          },
        },
      },
      responses: Object.fromEntries(
        Object.entries(ERROR_STATUSES).map(([status, description]) => [
          `E${status}`,
          { description, content: { 'application/json': { schema: ref('Error') } } },
        ]),
      ),
    },
    paths: {
      '/auth/login': {
        post: {
          summary: 'Log in; returns a bearer token',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { type: 'object', required: ['email', 'password'], properties: { email: { type: 'string' }, password: { type: 'string' } }, additionalProperties: false } } },
          },
          responses: { 200: ok('Token and user', { type: 'object' }), ...errors(400, 401, 415, 429) },
        },
      },
      '/auth/logout': { post: { ...secured, summary: 'Revoke the token used', responses: { 200: ok('Revoked', { type: 'object' }), ...errors(401) } } },
      '/auth/me': { get: { ...secured, summary: 'The current user', responses: { 200: ok('User', { type: 'object' }), ...errors(401) } } },
      '/auth/ws-ticket': {
        post: { ...secured, summary: 'A single-use WebSocket ticket, valid 30 s', responses: { 201: ok('Ticket', { type: 'object' }), ...errors(401) } },
      },
      '/jobs': {
        get: {
          ...secured,
          summary: 'List jobs, newest first; filters apply before pagination',
          parameters: [
            { name: 'status', in: 'query', schema: { type: 'string' }, description: 'Repeat or comma-separate.' },
            { name: 'type', in: 'query', schema: { type: 'string' } },
            { name: 'source', in: 'query', schema: { type: 'string' } },
            {
              name: 'search',
              in: 'query',
              schema: { type: 'string', maxLength: 200 },
              description:
                'Every word (a run of letters and digits; at most 10 words, 200 characters, else 400) must match a whole word or a word\'s ' +
                'prefix, case-insensitive, of the name, description, error message, or a value (not a key) of data or result. Anything else ' +
                '(quotes, operators, NUL) separates words. Each job of the page then has `matches` (where it matched, with ranges to mark); ' +
                '`meta.total` is exact up to 10,000, then `meta.totalCapped` (also set, with `total` a lower bound, when counting a ' +
                'common word behind a filter would cost more than its page: see README, "Search").',
            },
            {
              name: 'data.{path}',
              in: 'query',
              schema: { type: 'string', maxLength: 1000 },
              description:
                'Up to 3 such parameters (a 4th, a repeated one or a path not of [A-Za-z0-9_]+ segments joined by dots is 400), e.g. ' +
                '`data.order.id=1042`: the JSON value at that object path of the job\'s data equals the text, or the number when numeric.',
            },
            { name: 'parentJobId', in: 'query', schema: { type: 'string', format: 'uuid' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
          ],
          responses: { 200: ok('Jobs', { type: 'array', items: ref('Job') }, true), ...errors(400, 401) },
        },
        post: {
          ...secured,
          summary:
            'Create a job (create_jobs). Queued when a processor for its type exists. `source` and a priority above 0 need manage_jobs (403); ' +
            'an iconSvg over 32 KB, nested deeper than 64 or with more than 4,000 elements is 400 INVALID_SVG; per user, JOB_CREATE_RATE_PER_MINUTE ' +
            '(429 RATE_LIMITED) and MAX_PENDING_PER_OWNER (429 QUOTA_EXCEEDED), both with Retry-After.',
          requestBody: { required: true, content: { 'application/json': { schema: ref('CreateJob') } } },
          responses: { 201: ok('The job, pending', ref('Job')), ...errors(400, 401, 403, 413, 415, 429) },
        },
      },
      '/jobs/stats': { get: { ...secured, summary: 'Counts per status and per type (own jobs without read_jobs)', responses: { 200: ok('Stats', { type: 'object' }), ...errors(401) } } },
      '/jobs/cleanup': {
        delete: {
          ...secured,
          summary: 'Delete finished jobs completed more than daysOld days ago (manage_jobs)',
          parameters: [{ name: 'daysOld', in: 'query', required: true, schema: { type: 'integer', minimum: 1, maximum: 3650 } }],
          responses: { 200: ok('{ deleted }', { type: 'object' }), ...errors(400, 401, 403) },
        },
      },
      '/jobs/{jobId}': {
        get: { ...secured, summary: 'One job', parameters: [jobIdParam], responses: { 200: ok('The job', ref('Job')), ...errors(400, 401, 404) } },
        delete: {
          ...secured,
          summary: 'Delete a finished job (delete_jobs)',
          parameters: [jobIdParam],
          responses: { 200: ok('Deleted', { type: 'object' }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      ...Object.fromEntries(
        ['cancel', 'pause', 'resume', 'retry'].map((action) => [
          `/jobs/{jobId}/${action}`,
          {
            post: {
              ...secured,
              summary: `${action[0]!.toUpperCase()}${action.slice(1)} a job (its creator, or manage_jobs)`,
              parameters: [jobIdParam],
              responses: { 200: ok('The job after the change', ref('Job')), ...errors(400, 401, 403, 404, 409) },
            },
          },
        ]),
      ),
      '/jobs/{jobId}/priority': {
        post: {
          ...secured,
          summary: 'Change the priority of a waiting job',
          parameters: [jobIdParam],
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['priority'], properties: { priority: { type: 'integer', minimum: -1000, maximum: 1000 } }, additionalProperties: false } } } },
          responses: { 200: ok('The job', ref('Job')), ...errors(400, 401, 403, 404, 409) },
        },
      },
      '/jobs/queue': {
        get: {
          ...secured,
          summary: 'The Queue view: pending jobs of a type that a processor will claim, the due ones in the order the runtime claims them (priority DESC, runAt, id), or with delayed=true the delayed ones by runAt. Own jobs only without read_jobs.',
          parameters: [
            { name: 'type', in: 'query', required: true, schema: { type: 'string' } },
            { name: 'delayed', in: 'query', schema: { enum: ['true', 'false'], default: 'false' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
          ],
          responses: { 200: ok('Jobs in queue order', { type: 'array', items: ref('Job') }, true), ...errors(400, 401) },
        },
      },
      '/jobs/reorder': {
        post: {
          ...secured,
          summary:
            'Reorder pending jobs (manage_jobs): afterwards they are claimed in exactly the listed order relative to each other. Each takes the highest priority among them and a runAt just before the earliest of theirs, in the listed order (runAts only move earlier). All or nothing in one transaction: a job not pending, not run by a processor, or delayed (runAt ahead; make it due with run-now first) → 409 and nothing changed; unknown or invisible → 404. Each moved job is broadcast as a job_update. Send the head of a queue (from the top down to the lowest job moved) to keep it ahead of the jobs behind it.',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { type: 'object', required: ['jobIds'], properties: { jobIds: { type: 'array', minItems: 1, maxItems: 500, uniqueItems: true, items: { type: 'string', format: 'uuid' } } }, additionalProperties: false },
              },
            },
          },
          responses: { 200: ok('The jobs in their new order', { type: 'array', items: ref('Job') }), ...errors(400, 401, 403, 404, 409, 415) },
        },
      },
      '/jobs/{jobId}/export': {
        get: {
          ...secured,
          summary: 'A job with its items and errors, as a download',
          parameters: [jobIdParam, { name: 'format', in: 'query', schema: { enum: ['csv', 'json'], default: 'json' } }],
          responses: { 200: { description: 'CSV or JSON attachment' }, ...errors(400, 401, 404) },
        },
      },
    },
  }
}
