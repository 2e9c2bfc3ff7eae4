import { JOB_STATUSES } from '../../../contract.js'
import { filterSql, listSql, sortOf } from '../jobSql.js'
import type { JobListPage, JobListQuery, StoredJob } from '../JobStore.js'
import { sqliteMatch } from './query.js'
import { dataCheckSql, matchesNothing, sqliteMatchedIds, type SearchTerms } from './sql.js'

/**
 * Searches on SQLite, where every statement runs on the event loop: each one is bounded, and
 * long work goes in slices (each a separate statement, the loop free between them).
 *
 * A list first reads the newest RARE_MATCHES + 1 matches of the index (one statement):
 * - fewer: they are all the matches; their typed rows are filtered, sorted and paged. O(matches),
 *   whatever the number of jobs.
 * - more: walk the list's ordered index ranges (as an unfiltered list does) in growing slices (up
 *   to WALK_SLICE rows), a row being a hit when it is among the known matches, or for rows older
 *   than those, when the index holds it in that slice's post-id range; stop when the page is full.
 *   O(page / share of matches); newest first (the default) never goes back to the index.
 * A total walks the index's matches in slices of COUNT_SLICE post ids, checking the filters,
 * until it passes the cap.
 */

/** Up to this many index matches, a search starts from them (and they are the walk's membership set). */
export const RARE_MATCHES = 4000
/** Rows of the ordered walk per statement (×10 off the loop). */
export const WALK_SLICE = 2000
/** Index matches per counting statement (×4 off the loop: one statement reaches the 10,000 cap). */
export const COUNT_SLICE = 5000

export interface SqliteSearchIo {
  /** One statement: in the store's queue (its own event-loop turn), or on a reader thread. */
  all(sql: string, values: unknown[]): Promise<Record<string, unknown>[]>
  read(postIds: number[]): Promise<StoredJob[]>
  /** Statements run off the event loop (sqliteReader.ts): fewer, larger slices. */
  offLoop(): boolean
}

type Filters = Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>

/** The query's filters other than the index (type, owner, source…) plus the exact data checks. */
function otherFilters(query: Filters, terms: SearchTerms): { sql: string[]; values: unknown[] } {
  const rest = filterSql({ ...query, search: undefined, dataFilters: undefined }, 'sqlite')
  const check = dataCheckSql('sqlite', terms.filters)
  return { sql: [...rest.sql, ...check.sql], values: [...rest.values, ...check.values] }
}

function statusSql(query: Filters): { sql: string[]; values: unknown[] } {
  if (!query.statuses?.length) return { sql: [], values: [] }
  return { sql: [`j.status IN (${query.statuses.map(() => '?').join(', ')})`], values: [...query.statuses] }
}

export async function sqliteSearchList(query: JobListQuery, terms: SearchTerms, io: SqliteSearchIo): Promise<JobListPage> {
  const match = sqliteMatch(terms.words, terms.filters)
  if (matchesNothing(terms) || match === null) return { jobs: [], total: 0 }
  // The newest matches (by post id), one index statement: a common prefix is merged once here.
  const matched = sqliteMatchedIds(terms)
  const newest = (await io.all(`${matched.sql} ORDER BY 1 DESC LIMIT ?`, [...matched.values, RARE_MATCHES + 1])).map((row) => Number(row.id))
  const ids = newest.length <= RARE_MATCHES ? await fromMatches(query, terms, newest, io) : await walk(query, terms, newest, io)
  return { jobs: await io.read(ids), total: null }
}

/** Few matches (all of them known): their typed rows, filtered, sorted and paged. */
async function fromMatches(query: JobListQuery, terms: SearchTerms, matches: number[], io: SqliteSearchIo): Promise<number[]> {
  if (matches.length === 0) return []
  const { column, desc } = sortOf(query.sort)
  const dir = desc ? 'DESC' : 'ASC'
  const filters = otherFilters(query, terms)
  const statuses = statusSql(query)
  const where = ['j.post_id IN (SELECT value FROM json_each(?))', ...statuses.sql, ...filters.sql]
  const values: unknown[] = [JSON.stringify(matches), ...statuses.values, ...filters.values]
  if (query.after) {
    where.push(`(j.${column} ${desc ? '<' : '>'} ? OR (j.${column} = ? AND j.post_id ${desc ? '<' : '>'} ?))`)
    values.push(query.after.value, query.after.value, query.after.postId)
  }
  values.push(query.limit, query.offset)
  const rows = await io.all(
    `SELECT j.post_id AS post_id FROM job_state j WHERE ${where.join(' AND ')} ORDER BY j.${column} ${dir}, j.post_id ${dir} LIMIT ? OFFSET ?`,
    values,
  )
  return rows.map((row) => Number(row.post_id))
}

/**
 * Many matches: the list's ordered walk, slice by slice. A row at or above the lowest post id of
 * the known matches (`newest`, every match down to there) is a hit when it is one of them; rows
 * below it (an old job, another sort) are looked up in the index over their slice's id range.
 */
async function walk(query: JobListQuery, terms: SearchTerms, newest: number[], io: SqliteSearchIo): Promise<number[]> {
  const { desc } = sortOf(query.sort)
  const dir = desc ? 'DESC' : 'ASC'
  const want = query.offset + query.limit
  const base: JobListQuery = { ...query, search: undefined, dataFilters: undefined, statuses: query.statuses?.length ? query.statuses : JOB_STATUSES }
  const check = dataCheckSql('sqlite', terms.filters)
  const known = new Set(newest)
  const floor = newest.at(-1)!
  const hits: number[] = []
  const walkSlice = io.offLoop() ? WALK_SLICE * 5 : WALK_SLICE
  // Start small: with a common word the first page is near the start of the walk.
  let size = Math.min(walkSlice, Math.max(200, want * 2))
  let after = query.after
  for (;;) {
    const slice = listSql({ ...base, limit: size, offset: 0, after }, 'sqlite')
    const rows = await io.all(
      `WITH w AS (${slice.sql})
       SELECT j.post_id AS post_id, j.sort_value AS sort_value${check.sql.length ? `, (${check.sql.join(' AND ')}) AS checked` : ', 1 AS checked'} FROM w AS j
       ORDER BY j.sort_value ${dir}, j.post_id ${dir}`,
      [...slice.values, ...check.values],
    )
    const below = rows.filter((row) => Number(row.post_id) < floor).map((row) => Number(row.post_id))
    let older = new Set<number>()
    if (below.length) {
      // Only the slice's rows come back (the index's matches over the range stay in SQL).
      const range = [below.reduce((a, b) => Math.min(a, b)), below.reduce((a, b) => Math.max(a, b))]
      const inSlice = sqliteMatchedIds(terms, { sql: (id) => `${id} BETWEEN ? AND ?`, values: range })
      const found = await io.all(`SELECT value AS id FROM json_each(?) WHERE value IN (${inSlice.sql})`, [JSON.stringify(below), ...inSlice.values])
      older = new Set(found.map((row) => Number(row.id)))
    }
    for (const row of rows) {
      const id = Number(row.post_id)
      if (Number(row.checked) === 1 && (id >= floor ? known.has(id) : older.has(id))) hits.push(id)
    }
    if (hits.length >= want || rows.length < size) break
    const last = rows.at(-1)!
    after = { value: Number(last.sort_value), postId: Number(last.post_id) }
    size = Math.min(walkSlice, size * 4)
  }
  return hits.slice(query.offset, want)
}

/** How many jobs match, counted slice by slice along the index, stopping past `cap`. */
export async function sqliteSearchCount(query: Filters, terms: SearchTerms, cap: number, io: SqliteSearchIo): Promise<number> {
  const match = sqliteMatch(terms.words, terms.filters)
  if (matchesNothing(terms) || match === null) return 0
  const filters = otherFilters(query, terms)
  const statuses = statusSql(query)
  const conditions = [...statuses.sql, ...filters.sql]
  const pass = conditions.length ? `j.post_id IS NOT NULL AND ${conditions.join(' AND ')}` : 'j.post_id IS NOT NULL'
  const countSlice = io.offLoop() ? COUNT_SLICE * 4 : COUNT_SLICE
  let counted = 0
  let below = Number.MAX_SAFE_INTEGER
  for (;;) {
    const slice = sqliteMatchedIds(terms, { sql: (id) => `${id} < ?`, values: [below] })
    const [row] = await io.all(
      `SELECT COUNT(*) AS seen, MIN(c.id) AS low, COALESCE(SUM(CASE WHEN ${pass} THEN 1 ELSE 0 END), 0) AS n
       FROM (${slice.sql} ORDER BY 1 DESC LIMIT ?) c
       LEFT JOIN job_state j ON j.post_id = c.id`,
      [...statuses.values, ...filters.values, ...slice.values, countSlice],
    )
    counted += Number(row?.n ?? 0)
    if (counted >= cap || Number(row?.seen ?? 0) < countSlice) return Math.min(counted, cap)
    below = Number(row!.low)
  }
}
