import { z } from 'zod'
import { ValidationError } from '../errors.js'

export const MAX_JSON_BYTES = 256 * 1024
export const MAX_JSON_DEPTH = 32
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/**
 * Rejects JSON values that are too big or too deep, or that carry prototype-polluting keys,
 * before they reach storage. Returns the value unchanged.
 */
export function assertJsonValue(value: unknown, field: string, maxBytes = MAX_JSON_BYTES): unknown {
  const visit = (node: unknown, depth: number): void => {
    if (depth > MAX_JSON_DEPTH) throw new ValidationError(`${field} is nested more than ${MAX_JSON_DEPTH} levels deep.`)
    if (node === null || typeof node !== 'object') {
      if (typeof node === 'number' && !Number.isFinite(node)) throw new ValidationError(`${field} holds a number that is not finite.`)
      if (typeof node === 'function' || typeof node === 'symbol' || typeof node === 'bigint') {
        throw new ValidationError(`${field} must be plain JSON.`)
      }
      return
    }
    for (const key of Object.keys(node)) {
      if (FORBIDDEN_KEYS.has(key)) throw new ValidationError(`${field} may not contain the key ${JSON.stringify(key)}.`)
      visit((node as Record<string, unknown>)[key], depth + 1)
    }
  }
  visit(value, 0)
  let encoded: string | undefined
  try {
    encoded = JSON.stringify(value)
  } catch (cause) {
    throw new ValidationError(`${field} must be plain JSON.`, { cause })
  }
  if (encoded !== undefined && Buffer.byteLength(encoded, 'utf8') > maxBytes) {
    throw new ValidationError(`${field} is larger than ${Math.round(maxBytes / 1024)} KB.`)
  }
  return value
}

const jsonObject = (field: string, maxBytes?: number) =>
  z
    .record(z.string(), z.unknown())
    .superRefine((value, ctx) => {
      try {
        assertJsonValue(value, field, maxBytes)
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message })
      }
    })

const jsonAny = (field: string) =>
  z.unknown().superRefine((value, ctx) => {
    try {
      assertJsonValue(value, field)
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message })
    }
  })

export const JOB_TYPE_PATTERN = /^[A-Za-z0-9][\w.:-]{0,99}$/
export const MAX_TIMEOUT_MS = 24 * 3600 * 1000
export const MIN_PRIORITY = -1000
export const MAX_PRIORITY = 1000

/** Fields common to REST and the plugin API. Unknown fields are rejected. */
export const jobFieldsSchema = z.strictObject({
  name: z.string().trim().min(1, 'name is required').max(200),
  type: z.string().regex(JOB_TYPE_PATTERN, 'type must be 1-100 letters, digits, _ . : or -'),
  description: z.string().max(2000).optional(),
  iconSvg: z.string().max(64 * 1024).nullable().optional(),
  metadata: jsonObject('metadata', 64 * 1024).optional(),
  source: z.string().trim().min(1).max(100).optional(),
  showNotification: z.boolean().optional(),
  timeout: z.number().int().min(1).max(MAX_TIMEOUT_MS).nullable().optional(),
  priority: z.number().int().min(MIN_PRIORITY).max(MAX_PRIORITY).optional(),
  runAt: z.iso.datetime({ offset: true }).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  data: jsonAny('data').optional(),
})

/** The plugin API adds a relative delay, the creating user and a parent job. */
export const pluginJobSchema = jobFieldsSchema.extend({
  delay: z.number().int().min(0).max(365 * 24 * 3600 * 1000).optional(),
  createdBy: z.number().int().positive().nullable().optional(),
  parentJobId: z.string().uuid().nullable().optional(),
})

export type JobFields = z.infer<typeof jobFieldsSchema>
export type CreateJobInput = z.input<typeof pluginJobSchema>
export type ParsedJobInput = z.infer<typeof pluginJobSchema>

/** Formats zod issues as one sentence for the error envelope. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const where = issue.path.length ? issue.path.join('.') : 'body'
      if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`
      return `${where}: ${issue.message}`
    })
    .join('; ')
}

/**
 * The first `__proto__` / `constructor` / `prototype` own key in raw input. JSON.parse creates
 * them as own keys; a schema that copies keys (z.record, z.object) would silently turn
 * `__proto__` into the copy's prototype and drop it, so they are refused before parsing.
 */
function findForbiddenKey(node: unknown, depth = 0): string | undefined {
  if (depth > MAX_JSON_DEPTH + 1 || node === null || typeof node !== 'object') return undefined
  for (const key of Object.keys(node)) {
    if (FORBIDDEN_KEYS.has(key)) return key
    const found = findForbiddenKey((node as Record<string, unknown>)[key], depth + 1)
    if (found) return found
  }
  return undefined
}

export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const forbidden = findForbiddenKey(value)
  if (forbidden) throw new ValidationError(`The input may not contain the key ${JSON.stringify(forbidden)}.`)
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new ValidationError(describeIssues(parsed.error))
  return parsed.data
}
