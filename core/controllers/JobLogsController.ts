import type { Request, Router } from 'express'
import { z } from 'zod'
import { parseOrThrow } from '../registry/jobInput.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import { MAX_LINE_BYTES, type JobLogs } from '../logs/index.js'
import { visibleJob as visibleJobOf } from './jobAccess.js'

export const MAX_LOG_PAGE = 1000
export const DEFAULT_LOG_PAGE = 200

const integerParam = (name: string, min: number, max: number) =>
  z
    .string({ error: `${name} must be given once` })
    .max(16, `${name} must be an integer from ${min} to ${max}`)
    .regex(/^\d+$/, `${name} must be an integer from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => Number.isSafeInteger(n) && n >= min && n <= max, `${name} must be an integer from ${min} to ${max}`)

const logsQuerySchema = z.strictObject({
  after: integerParam('after', 0, Number.MAX_SAFE_INTEGER).optional(),
  limit: integerParam('limit', 1, MAX_LOG_PAGE).optional(),
})

/**
 * GET /api/v1/jobs/:jobId/logs and /attempts (issue 15), on the jobs router (after its
 * authentication), with the visibility of GET /jobs/:jobId: a job the caller may not see is 404
 * JOB_NOT_FOUND, like an unknown one.
 */
export function mountJobLogRoutes(router: Router, options: { jobs: RegisterJobs; logs: JobLogs }): void {
  const { jobs, logs } = options

  const visibleJob = (req: Request) => visibleJobOf(jobs, req)

  router.get('/:jobId/logs', async (req, res) => {
    const query = parseOrThrow(logsQuerySchema, req.query)
    const record = await visibleJob(req)
    const after = query.after ?? 0
    const limit = query.limit ?? DEFAULT_LOG_PAGE
    const page = await logs.readLogs(record.id, after, limit)
    const next = page.lines.length ? page.lines[page.lines.length - 1]!.seq : after
    res.status(200).json({
      success: true,
      data: page.lines,
      // `next`: pass as `after` for the next page; `lastSeq`: the newest line's seq; `dropped`:
      // lines the job no longer has (its 10,000-line cap) or never wrote (too many waiting).
      meta: { next, limit, after, lastSeq: page.lastSeq, dropped: page.dropped, hasMore: page.lastSeq > next },
    })
  })

  router.get('/:jobId/attempts', async (req, res) => {
    parseOrThrow(z.strictObject({}), req.query)
    const record = await visibleJob(req)
    res.status(200).json({ success: true, data: await logs.attempts(record.id) })
  })
}

type Json = Record<string, unknown>

/** The two routes and the WebSocket messages, in the OpenAPI document (`openapi_document` filter). */
export function addJobLogPaths(document: Json): Json {
  const errors = (...statuses: number[]) =>
    Object.fromEntries(statuses.map((status) => [String(status), { $ref: `#/components/responses/E${status}` }]))
  const jobIdParam = { name: 'jobId', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }
  const line: Json = {
    type: 'object',
    required: ['seq', 'at', 'level', 'message', 'fields', 'attempt'],
    properties: {
      seq: { type: 'integer', description: '1, 2, 3... per job; pages and live lines are ordered by it' },
      at: { type: 'string', format: 'date-time' },
      level: { enum: ['debug', 'info', 'warn', 'error'] },
      message: {
        type: 'string',
        description: `At most ${MAX_LINE_BYTES} UTF-8 bytes: a longer message is cut and ends with " …[cut: N bytes]". Control characters are kept as they were written (NUL as the text \\u0000): show them escaped.`,
      },
      fields: { type: ['object', 'null'] },
      attempt: { type: 'integer', description: 'The attempt that wrote the line (0 for a tracked job before start())' },
    },
  }
  const attempt: Json = {
    type: 'object',
    properties: {
      attempt: { type: 'integer' },
      instance: { type: ['string', 'null'], description: 'The process (host:pid:random) that ran it' },
      startedAt: { type: 'string', format: 'date-time' },
      finishedAt: { type: ['string', 'null'], format: 'date-time' },
      durationMs: { type: ['integer', 'null'] },
      outcome: { enum: ['running', 'completed', 'failed', 'timeout', 'cancelled', 'paused', 'lease_expired', 'shutdown'] },
      error: {
        type: ['object', 'null'],
        properties: { message: { type: 'string' }, stack: { type: ['string', 'null'], description: 'At most 12 frames / 2 KB' } },
      },
    },
  }
  const paths = (document.paths ?? {}) as Json
  return {
    ...document,
    paths: {
      ...paths,
      '/jobs/{jobId}/logs': {
        get: {
          security: [{ bearer: [] }],
          summary:
            'Log lines of a job, oldest first (visibility as GET /jobs/{jobId}). A job keeps its last 10,000 lines. Live lines: WebSocket {"type":"subscribe_logs","jobId"} → {"type":"job_log","jobId","lines":[...]} (at most 10 messages a second per subscription; {"type":"error","code":"NOT_FOUND"} for a job the client may not see; at most 20 subscriptions per socket, then RATE_LIMITED; {"type":"unsubscribe_logs","jobId"} or closing the socket ends them)',
          parameters: [
            jobIdParam,
            { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 }, description: 'Only lines with a greater seq' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_LOG_PAGE, default: DEFAULT_LOG_PAGE } },
          ],
          responses: {
            200: {
              description: 'Lines; meta.next is the last seq returned (pass it as after), meta.lastSeq the newest, meta.dropped how many lines the job no longer has',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      success: { const: true },
                      data: { type: 'array', items: line },
                      meta: {
                        type: 'object',
                        properties: {
                          next: { type: 'integer' },
                          limit: { type: 'integer' },
                          after: { type: 'integer' },
                          lastSeq: { type: 'integer' },
                          dropped: { type: 'integer' },
                          hasMore: { type: 'boolean' },
                        },
                      },
                    },
                  },
                },
              },
            },
            ...errors(400, 401, 404),
          },
        },
      },
      '/jobs/{jobId}/attempts': {
        get: {
          security: [{ bearer: [] }],
          summary: 'Every run of a job, oldest first, with how it ended (visibility as GET /jobs/{jobId})',
          parameters: [jobIdParam],
          responses: {
            200: {
              description: 'Attempts',
              content: { 'application/json': { schema: { type: 'object', properties: { success: { const: true }, data: { type: 'array', items: attempt } } } } },
            },
            ...errors(400, 401, 404),
          },
        },
      },
    },
  }
}

