import { z } from 'zod'
import { chainOptionsSchema, chainStepSchema, MAX_CHAIN_STEPS } from './chains.js'

type Json = Record<string, unknown>

/** The workflow routes, added to the OpenAPI document through the `openapi_document` filter. */
export function addWorkflowPaths(document: Json): Json {
  const envelope = (data: Json, list = false): Json => ({
    description: 'OK',
    content: {
      'application/json': {
        schema: {
          type: 'object',
          required: ['success', 'data'],
          properties: { success: { const: true }, data, ...(list ? { meta: { $ref: '#/components/schemas/ListMeta' } } : {}) },
        },
      },
    },
  })
  const errors = (...statuses: number[]) =>
    Object.fromEntries(statuses.map((status) => [String(status), { $ref: `#/components/responses/E${status}` }]))
  const secured = { security: [{ bearer: [] }] }
  const schedule: Json = {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      name: { type: 'string' },
      schedule: { type: 'string', description: 'cron pattern (croner syntax)' },
      timezone: { type: 'string' },
      jobData: { type: 'object' },
      nextRunAt: { type: ['string', 'null'], format: 'date-time' },
      lastRunAt: { type: ['string', 'null'], format: 'date-time' },
      lastJobId: { type: ['string', 'null'] },
      owner: { type: ['string', 'null'] },
      createdAt: { type: 'string', format: 'date-time' },
      updatedAt: { type: 'string', format: 'date-time' },
    },
  }
  const chainBody = z.toJSONSchema(
    chainOptionsSchema.omit({ createdBy: true }).extend({ steps: z.array(chainStepSchema).min(1).max(MAX_CHAIN_STEPS) }),
    { io: 'input', unrepresentable: 'any' },
  )
  const paging = [
    { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
    { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
  ]
  const paths = (document.paths ?? {}) as Json
  return {
    ...document,
    paths: {
      ...paths,
      '/schedules': {
        get: { ...secured, summary: 'Cron schedules (manage_jobs)', parameters: paging, responses: { 200: envelope({ type: 'array', items: schedule }, true), ...errors(400, 401, 403) } },
      },
      '/schedules/{name}': {
        get: {
          ...secured,
          summary: 'One cron schedule (manage_jobs)',
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: envelope(schedule), ...errors(401, 403, 404) },
        },
      },
      '/jobs/chain': {
        post: {
          ...secured,
          summary: 'Enqueue a chain: steps run in order as children of a parent job; {{steps[N].result.path}} templates; a failed step fails the chain',
          requestBody: { required: true, content: { 'application/json': { schema: chainBody } } },
          responses: { 201: envelope({ $ref: '#/components/schemas/Job' }), ...errors(400, 401, 403, 415) },
        },
      },
      '/jobs/{jobId}/chain': {
        get: {
          ...secured,
          summary:
            'A chain drawn as a chain: { chain, steps: [{ index, type, name, job (null when not created), state (a status, waiting or never_created), durationMs, summary, uses: [{ step, path }] (template links to earlier steps), failed }], failedStep }',
          parameters: [{ name: 'jobId', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
          responses: { 200: envelope({ type: 'object' }), ...errors(400, 401, 404) },
        },
      },
    },
  }
}
