import { filterSql, sortOf } from '../jobSql.js'
import type { JobListQuery } from '../JobStore.js'
import { postgresKvTokens, postgresTsQuery } from './query.js'
import { dataCheckSql, matchesNothing, type SearchTerms } from './sql.js'
import { RARE_MATCHES } from './sqliteSearch.js'

/**
 * Searches on PostgreSQL: first the index alone (GIN: a bitmap of the matches), at most
 * RARE_MATCHES + 1 post ids. Fewer are all the matches: the page (or the total) is computed over
 * their typed rows only, whatever the number of jobs. More (a common word): null, and the caller
 * runs the list's ordered walk with the index as an EXISTS condition (jobSql listSql / countSql).
 */

type Query = (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>
type Filters = Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>

/** Every matching post id when there are at most RARE_MATCHES, else null. */
export async function postgresFewMatches(terms: SearchTerms, query: Query, rare = RARE_MATCHES): Promise<number[] | null> {
  if (matchesNothing(terms)) return []
  const where: string[] = []
  const values: unknown[] = []
  const tsquery = postgresTsQuery(terms.words)
  if (tsquery) where.push(`doc @@ to_tsquery('simple', ?)`), values.push(tsquery)
  for (const filter of terms.filters) where.push('kv && ?::text[]'), values.push(postgresKvTokens(filter))
  const rows = await query(`SELECT post_id FROM job_search WHERE ${where.join(' AND ')} LIMIT ?`, [...values, rare + 1])
  return rows.length <= rare ? rows.map((row) => Number(row.post_id)) : null
}

function conditions(filters: Filters, terms: SearchTerms, ids: number[]): { sql: string[]; values: unknown[] } {
  const rest = filterSql({ ...filters, search: undefined, dataFilters: undefined }, 'postgres')
  const check = dataCheckSql('postgres', terms.filters)
  const sql = ['j.post_id = ANY(?::int[])', ...rest.sql, ...check.sql]
  const values: unknown[] = [ids, ...rest.values, ...check.values]
  if (filters.statuses?.length) sql.push('j.status = ANY(?::text[])'), values.push([...filters.statuses])
  return { sql, values }
}

/** The page over known matches, as `SELECT post_id, sort_value` (the shape of listSql). */
export function postgresPageOf(query: JobListQuery, terms: SearchTerms, ids: number[]): { sql: string; values: unknown[] } {
  if (ids.length === 0) return { sql: 'SELECT NULL::integer AS post_id, NULL::bigint AS sort_value WHERE false', values: [] }
  const { column, desc } = sortOf(query.sort)
  const dir = desc ? 'DESC' : 'ASC'
  const { sql, values } = conditions(query, terms, ids)
  if (query.after) {
    sql.push(`(j.${column} ${desc ? '<' : '>'} ? OR (j.${column} = ? AND j.post_id ${desc ? '<' : '>'} ?))`)
    values.push(query.after.value, query.after.value, query.after.postId)
  }
  return {
    sql: `SELECT j.post_id AS post_id, j.${column} AS sort_value FROM job_state j WHERE ${sql.join(' AND ')}
          ORDER BY j.${column} ${dir}, j.post_id ${dir} LIMIT ? OFFSET ?`,
    values: [...values, query.limit, query.offset],
  }
}

/** How many of the known matches pass the other filters. */
export function postgresCountOf(filters: Filters, terms: SearchTerms, ids: number[]): { sql: string; values: unknown[] } {
  if (ids.length === 0) return { sql: 'SELECT 0 AS n', values: [] }
  const { sql, values } = conditions(filters, terms, ids)
  return { sql: `SELECT COUNT(*) AS n FROM job_state j WHERE ${sql.join(' AND ')}`, values }
}
