import { filterSql, sortOf } from '../jobSql.js'
import type { JobListQuery } from '../JobStore.js'
import { ownerToken } from './document.js'
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

/** Jobs sampled (the newest) to tell a common word before asking the GIN index. */
export const DENSITY_SAMPLE = 1000
/** A word in at least this share of the sample is common: its walk finds a page at once. */
export const COMMON_SHARE = 0.02

/** The index's part of a search: its words, its data tokens, and the creator when the list is one user's. */
function indexConditions(terms: SearchTerms, createdBy: number | undefined): { where: string[]; values: unknown[] } {
  const where: string[] = []
  const values: unknown[] = []
  const tsquery = postgresTsQuery(terms.words)
  if (tsquery) where.push(`doc @@ to_tsquery('simple', ?)`), values.push(tsquery)
  for (const filter of terms.filters) where.push('kv && ?::text[]'), values.push(postgresKvTokens(filter))
  if (createdBy !== undefined) where.push('kv && ?::text[]'), values.push([ownerToken(createdBy)])
  return { where, values }
}

/**
 * The share of the newest DENSITY_SAMPLE jobs whose index entry matches (each checked by key,
 * ~2 ms): a GIN prefix scan merges every lexeme of the prefix (`custom:*`, 250,000 of them: 50 to
 * 90 ms at a million jobs) even when the first page is in the newest hundred jobs.
 */
export async function postgresDensity(terms: SearchTerms, query: Query, createdBy?: number): Promise<number> {
  if (matchesNothing(terms)) return 0
  const { where, values } = indexConditions(terms, createdBy)
  const [row] = await query(
    `SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE ${where.join(' AND ')}) AS hits FROM (SELECT doc, kv FROM job_search ORDER BY post_id DESC LIMIT ?) s`,
    [...values, DENSITY_SAMPLE],
  )
  return Number(row?.hits ?? 0) / Math.max(1, Number(row?.n ?? 0))
}

export interface PostgresMatches {
  /** Every matching post id when there are at most RARE_MATCHES, else null. */
  few: number[] | null
  /** The share of the newest jobs that match (postgresDensity). */
  density: number
}

/**
 * How a search goes: a common word in many jobs (by its density and the table's size as the
 * planner knows it) has more than RARE_MATCHES matches, so the GIN index is not asked; else it
 * is, for at most RARE_MATCHES + 1 of them.
 */
export async function postgresMatches(terms: SearchTerms, query: Query, rare = RARE_MATCHES, createdBy?: number): Promise<PostgresMatches> {
  if (matchesNothing(terms)) return { few: [], density: 0 }
  const density = await postgresDensity(terms, query, createdBy)
  if (density >= COMMON_SHARE) {
    const [table] = await query(`SELECT reltuples AS n FROM pg_class WHERE oid = 'job_search'::regclass`, [])
    if (Number(table?.n ?? 0) * density > rare * 2) return { few: null, density }
  }
  const { where, values } = indexConditions(terms, createdBy)
  const rows = await query(`SELECT post_id FROM job_search WHERE ${where.join(' AND ')} LIMIT ?`, [...values, rare + 1])
  return { few: rows.length <= rare ? rows.map((row) => Number(row.post_id)) : null, density }
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
