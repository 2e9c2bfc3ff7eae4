import type { Dialect } from '../../../db/createDatabase.js'
import {
  numericValue,
  parseDataFilters,
  parseSearch,
  postgresKvTokens,
  postgresTsQuery,
  sqliteJsonPath,
  sqliteMatch,
  type DataFilter,
} from './query.js'

/**
 * Conditions of a job search over `job_state j`, per dialect: membership in the full-text index
 * (migrations/008_job_search.ts) and the exact check of each `data.<path>` filter (the index
 * finds candidates by the first 32 characters of a value; the check compares the whole value).
 */

export interface SearchTerms {
  /** `search` was given (even when it has no words: then nothing matches). */
  searching: boolean
  words: string[]
  filters: DataFilter[]
}

export function searchTerms(query: { search?: string; dataFilters?: readonly DataFilter[] }): SearchTerms | null {
  const searching = query.search !== undefined && query.search !== ''
  const filters = parseDataFilters(query.dataFilters ?? [])
  if (!searching && filters.length === 0) return null
  return { searching, words: searching ? parseSearch(query.search!) : [], filters }
}

/** Nothing can match: `search` held no letters or digits, or a data value holds NUL (no stored text can). */
export const matchesNothing = (terms: SearchTerms) =>
  (terms.searching && terms.words.length === 0) || terms.filters.some((filter) => filter.value.includes('\u0000'))

/** The exact check of the data filters, over `j` (both dialects). */
export function dataCheckSql(dialect: Dialect, filters: readonly DataFilter[]): { sql: string[]; values: unknown[] } {
  const sql: string[] = []
  const values: unknown[] = []
  for (const filter of filters) {
    const n = numericValue(filter.value)
    if (dialect === 'sqlite') {
      const path = sqliteJsonPath(filter.path)
      sql.push(`EXISTS (SELECT 1 FROM post_meta dm WHERE dm.post_id = j.post_id AND dm.meta_key = 'data' AND json_valid(dm.meta_value) AND CASE json_type(dm.meta_value, ?)
          WHEN 'text' THEN json_extract(dm.meta_value, ?) = ?
          WHEN 'integer' THEN json_extract(dm.meta_value, ?) = ?
          WHEN 'real' THEN json_extract(dm.meta_value, ?) = ?
          WHEN 'true' THEN ? = 'true' WHEN 'false' THEN ? = 'false' ELSE 0 END)`)
      values.push(path, path, filter.value, path, n, path, n, filter.value, filter.value)
    } else {
      sql.push(`EXISTS (SELECT 1 FROM post_meta dm CROSS JOIN LATERAL (SELECT jobpost_try_jsonb(dm.meta_value) #> ?::text[] AS v) x
          WHERE dm.post_id = j.post_id AND dm.meta_key = 'data' AND CASE jsonb_typeof(x.v)
          WHEN 'string' THEN x.v #>> '{}' = ?
          WHEN 'number' THEN (x.v #>> '{}')::numeric = ?::numeric
          WHEN 'boolean' THEN x.v #>> '{}' = ? ELSE false END)`)
      values.push(filter.path.split('.'), filter.value, n === null ? null : String(n), filter.value)
    }
  }
  return { sql, values }
}

/** Index membership and exact checks of a search, as conditions over `j`. */
export function searchFilterSql(dialect: Dialect, terms: SearchTerms): { sql: string[]; values: unknown[] } {
  if (matchesNothing(terms)) return { sql: ['1 = 0'], values: [] }
  const sql: string[] = []
  const values: unknown[] = []
  if (dialect === 'sqlite') {
    sql.push('j.post_id IN (SELECT rowid FROM job_search WHERE job_search MATCH ?)')
    values.push(sqliteMatch(terms.words, terms.filters))
  } else {
    const index: string[] = []
    const tsquery = postgresTsQuery(terms.words)
    if (tsquery) index.push(`s.doc @@ to_tsquery('simple', ?)`), values.push(tsquery)
    for (const filter of terms.filters) index.push('s.kv && ?::text[]'), values.push(postgresKvTokens(filter))
    sql.push(`EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = j.post_id AND ${index.join(' AND ')})`)
  }
  const check = dataCheckSql(dialect, terms.filters)
  return { sql: [...sql, ...check.sql], values: [...values, ...check.values] }
}
