import type { Dialect } from '../../../db/createDatabase.js'
import {
  numericValue,
  parseDataFilters,
  parseSearch,
  postgresKvTokens,
  postgresTsQuery,
  sqliteJsonPath,
  sqliteMatch,
  sqlitePendingMatch,
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

/**
 * SQLite: the post ids whose index row matches, as a compound SELECT of one column `id`: the
 * FTS5 table's rows (but those a pending row replaces) and the pending rows
 * (migrations/012_job_search_pending.ts). `range`, a condition on the id given as a function of
 * its column, restricts both parts. Append `ORDER BY 1 DESC LIMIT ?` for the newest: SQLite
 * merges the two ordered parts, FTS5 reading its doclist in rowid order and stopping early.
 */
export function sqliteMatchedIds(
  terms: SearchTerms,
  range?: { sql: (column: string) => string; values: unknown[] },
): { sql: string; values: unknown[] } {
  const pending = sqlitePendingMatch(terms.words, terms.filters)
  const inIndex = range ? ` AND ${range.sql('rowid')}` : ''
  const inPending = range ? ` AND ${range.sql('p.post_id')}` : ''
  return {
    sql: `SELECT rowid AS id FROM job_search WHERE job_search MATCH ?${inIndex}
            AND rowid NOT IN (SELECT post_id FROM job_search_pending WHERE replaces = 1)
          UNION ALL
          SELECT p.post_id AS id FROM job_search_pending p WHERE ${pending.sql.join(' AND ')}${inPending}`,
    values: [sqliteMatch(terms.words, terms.filters), ...(range?.values ?? []), ...pending.values, ...(range?.values ?? [])],
  }
}

/**
 * PostgreSQL: `set` lets the planner take the matches as a set (EXISTS: a GIN bitmap or a scan,
 * as it estimates; right for a total), `perRow` checks each row's index entry by its key as an
 * ordered walk reaches it (right for a page of a common word, see below).
 */
export type SearchCheck = 'set' | 'perRow'

/** Index membership and exact checks of a search, as conditions over `j`. */
export function searchFilterSql(dialect: Dialect, terms: SearchTerms, form: SearchCheck = 'set'): { sql: string[]; values: unknown[] } {
  if (matchesNothing(terms)) return { sql: ['1 = 0'], values: [] }
  const sql: string[] = []
  const values: unknown[] = []
  if (dialect === 'sqlite') {
    const matched = sqliteMatchedIds(terms)
    sql.push(`j.post_id IN (${matched.sql})`)
    values.push(...matched.values)
  } else {
    // PostgreSQL runs this only for a word of many matches (postgresSearch.ts takes the few). A
    // page walks the list's ordered ranges checking each row's entry by its key (`perRow`, a
    // scalar subquery): as EXISTS the planner built a GIN bitmap per status range instead (it
    // takes a prefix's selectivity for rare: `custom:*` was estimated at 315 rows of 300,000),
    // the whole bitmap seven times (1.1 s).
    const index: string[] = []
    const tsquery = postgresTsQuery(terms.words)
    if (tsquery) index.push(`s.doc @@ to_tsquery('simple', ?)`), values.push(tsquery)
    for (const filter of terms.filters) index.push('s.kv && ?::text[]'), values.push(postgresKvTokens(filter))
    sql.push(
      form === 'perRow'
        ? `(SELECT ${index.join(' AND ')} FROM job_search s WHERE s.post_id = j.post_id)`
        : `EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = j.post_id AND ${index.join(' AND ')})`,
    )
  }
  const check = dataCheckSql(dialect, terms.filters)
  return { sql: [...sql, ...check.sql], values: [...values, ...check.values] }
}
