import { LOG_LEVELS, type LogLevel } from '../contract.js'

/** A job keeps its last this many lines; older ones are deleted as new ones arrive. */
export const LOG_LINE_CAP = 10_000
/** A message (and, separately, the JSON of its fields) longer than this many UTF-8 bytes is cut. */
export const MAX_LINE_BYTES = 4096
/** What ends a cut message: how many bytes the whole message had. */
export const cutMarker = (bytes: number) => ` …[cut: ${bytes} bytes]`

/** A line as a caller gave it, after normalisation (ready to be written). */
export interface PendingLine {
  jobId: string
  postId: number
  at: number
  level: LogLevel
  message: string
  /** JSON text, or null. */
  fields: string | null
  attempt: number
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value)
}

/**
 * The message as stored: any value becomes text; control characters stay as they are (they are
 * text: the admin shows them escaped, nothing interprets them), except NUL, which PostgreSQL text
 * cannot hold and which is stored as the six characters `\u0000` on both dialects; over
 * MAX_LINE_BYTES it is cut at a character boundary and marked with its full size.
 */
export function normaliseMessage(message: unknown): string {
  let text = typeof message === 'string' ? message : message instanceof Error ? message.message : safeString(message)
  if (text.includes('\u0000')) text = text.replaceAll('\u0000', '\\u0000')
  // A JS string holds at most 3 UTF-8 bytes per UTF-16 unit: short strings need no measuring.
  if (text.length * 3 <= MAX_LINE_BYTES) return text
  const bytes = Buffer.byteLength(text)
  if (bytes <= MAX_LINE_BYTES) return text
  const marker = cutMarker(bytes)
  return cutUtf8(text, MAX_LINE_BYTES - Buffer.byteLength(marker)) + marker
}

/** Fields as JSON text; unserialisable values are described, not thrown; over the limit, a stub. */
export function normaliseFields(fields: unknown): string | null {
  if (fields === undefined || fields === null) return null
  let json: string | undefined
  const value = typeof fields === 'object' && !Array.isArray(fields) ? fields : { value: fields }
  try {
    json = JSON.stringify(value)
  } catch {
    try {
      // BigInt (and only then the slower replacer); a cycle still fails.
      json = JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v))
    } catch (error) {
      json = JSON.stringify({ unserialisable: (error as Error).message.slice(0, 200) })
    }
  }
  if (json === undefined || json === '{}') return null
  if (json.length * 3 > MAX_LINE_BYTES) {
    const bytes = Buffer.byteLength(json)
    if (bytes > MAX_LINE_BYTES) return JSON.stringify({ cut: true, bytes, preview: cutUtf8(json, 1024) })
  }
  return json
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes, never splitting a character. */
export function cutUtf8(text: string, maxBytes: number): string {
  const buffer = Buffer.from(text)
  if (buffer.length <= maxBytes) return text
  let end = Math.max(0, maxBytes)
  // Step back over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && (buffer[end]! & 0xc0) === 0x80) end--
  return buffer.subarray(0, end).toString('utf8')
}

function safeString(value: unknown): string {
  try {
    return String(value)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/** An error for an attempt's history: its message and a stack of at most 12 frames / 2 KB. */
export function attemptError(error: unknown): { message: string; stack: string | null } | null {
  if (error === null || error === undefined) return null
  if (error instanceof Error) {
    const stack = error.stack ? trimStack(error.stack) : null
    return { message: normaliseMessage(error.message), stack }
  }
  return { message: normaliseMessage(error), stack: null }
}

export function trimStack(stack: string): string {
  const lines = stack.split('\n')
  const kept = lines.slice(0, 13)
  if (lines.length > kept.length) kept.push(`    … ${lines.length - kept.length} more frames`)
  return cutUtf8(kept.join('\n'), 2048)
}
