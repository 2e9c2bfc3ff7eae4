import { ValidationError } from '../../../errors.js'
import { KV_VALUE_CHARS, kvToken } from './document.js'

/**
 * What a job search asks, parsed once into words and data filters; everything else (FTS5 and
 * tsquery syntax, quotes, operators, NUL) is never passed on as query syntax: a word is a run of
 * letters and digits, exactly what the index keeps (SQLite `unicode61`, PostgreSQL 'simple' over
 * text whose other characters became spaces). Every word must match a whole word or a word's
 * prefix of the job's name, description, error message, or a value of its data or result.
 */

/** Documented limits of `search` (API: a longer query is 400). */
export const SEARCH_MAX_LENGTH = 200
export const SEARCH_MAX_WORDS = 10
/** `data.<path>=value` filters per query. */
export const DATA_FILTERS_MAX = 3
export const DATA_PATH_MAX_LENGTH = 200
export const DATA_VALUE_MAX_LENGTH = 1000

const PATH = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/
const WORD = /[\p{L}\p{N}]+/gu
const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/

/** `data.<path>=value`: the JSON value at `path` of the job's data equals `value` (text or number). */
export interface DataFilter {
  path: string
  value: string
}

/** The lowercase words of a search text (distinct, in order). */
export function searchWords(text: string): string[] {
  return [...new Set((text.normalize('NFC').match(WORD) ?? []).map((word) => word.toLowerCase()))]
}

/** Checks a search text against the documented limits; its words (none: it matches nothing). */
export function parseSearch(text: string): string[] {
  if (text.length > SEARCH_MAX_LENGTH) {
    throw new ValidationError(`search is too long: at most ${SEARCH_MAX_LENGTH} characters.`)
  }
  const words = searchWords(text)
  if (words.length > SEARCH_MAX_WORDS) throw new ValidationError(`search has too many words: at most ${SEARCH_MAX_WORDS}.`)
  return words
}

/** Checks `data.<path>` filters (path segments of letters, digits and `_`, at most three). */
export function parseDataFilters(filters: readonly DataFilter[]): DataFilter[] {
  if (filters.length > DATA_FILTERS_MAX) throw new ValidationError(`At most ${DATA_FILTERS_MAX} data.<path> filters may be given.`)
  for (const { path, value } of filters) {
    if (path.length > DATA_PATH_MAX_LENGTH || !PATH.test(path)) {
      throw new ValidationError(
        `data.${path.slice(0, 60)} is not a data path: use segments of letters, digits and _ joined by dots (data.order.id).`,
      )
    }
    if (typeof value !== 'string' || value.length > DATA_VALUE_MAX_LENGTH) {
      throw new ValidationError(`data.${path} must be given once, as text of at most ${DATA_VALUE_MAX_LENGTH} characters.`)
    }
  }
  return [...filters]
}

/** The number a filter value also matches, when it is numeric. */
export function numericValue(value: string): number | null {
  if (!NUMBER.test(value)) return null
  const n = Number(value)
  return Number.isFinite(n) ? n : null
}

/**
 * The texts a value's index token may hold: the value itself, and for a number the forms the
 * databases print it in (`42`, `42.0`); the filter then checks the stored value exactly.
 */
export function valueForms(value: string): string[] {
  const forms = new Set([value])
  const n = numericValue(value)
  if (n !== null) {
    forms.add(String(n))
    if (Number.isInteger(n) && Math.abs(n) < 1e15) forms.add(`${n}.0`)
  }
  return [...forms].map((form) => [...form].slice(0, KV_VALUE_CHARS).join(''))
}

/** SQLite FTS5: the `data.<path>` tokens of a filter (any may match; search/document.ts). */
export function sqliteKvTokens(filter: DataFilter): string[] {
  return [...new Set(valueForms(filter.value).map((form) => kvToken(filter.path, form)))]
}

/** PostgreSQL: the `kv` elements of a filter (any may match). */
export function postgresKvTokens(filter: DataFilter): string[] {
  return valueForms(filter.value).map((form) => `${filter.path}=${form}`)
}

/**
 * The FTS5 MATCH expression: every word as a quoted prefix in `body`, and one token of each
 * filter in `kv`. Words are letters and digits only, so the quotes cannot be escaped from.
 */
export function sqliteMatch(words: readonly string[], filters: readonly DataFilter[]): string | null {
  const parts: string[] = []
  if (words.length) parts.push(`{body} : (${words.map((word) => `"${word}"*`).join(' AND ')})`)
  for (const filter of filters) parts.push(`{kv} : (${sqliteKvTokens(filter).map((token) => `"${token}"`).join(' OR ')})`)
  return parts.length ? parts.join(' AND ') : null
}

/**
 * The same match over a pending index row `p` (migrations/012; rows written as
 * document.ts sqliteSearchRow writes them): every word a prefix of one of its words, one token of
 * each filter among its tokens.
 */
export function sqlitePendingMatch(words: readonly string[], filters: readonly DataFilter[]): { sql: string[]; values: unknown[] } {
  const sql: string[] = []
  const values: unknown[] = []
  for (const word of words) sql.push('instr(p.body, ?) > 0'), values.push(` ${word}`)
  for (const filter of filters) {
    const tokens = sqliteKvTokens(filter)
    sql.push(`(${tokens.map(() => 'instr(p.kv, ?) > 0').join(' OR ')})`)
    values.push(...tokens.map((token) => ` ${token} `))
  }
  return { sql, values }
}

/** The tsquery (to_tsquery('simple', …)) of the words: `a:* & b:*`. */
export function postgresTsQuery(words: readonly string[]): string | null {
  return words.length ? words.map((word) => `${word}:*`).join(' & ') : null
}

/** JSON path of SQLite (`$."order"."id"`) and PostgreSQL (`{order,id}`) of a filter. */
export function sqliteJsonPath(path: string): string {
  return `$${path
    .split('.')
    .map((segment) => `."${segment}"`)
    .join('')}`
}
