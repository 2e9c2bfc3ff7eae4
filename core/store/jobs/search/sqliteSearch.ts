import { JOB_STATUSES } from '../../../contract.js'
import { filterSql, listSql, sortOf } from '../jobSql.js'
import type { CountResult, JobListPage, JobListQuery, StoredJob } from '../JobStore.js'
import { sqliteMatch } from './query.js'
import { dataCheckSql, matchesNothing, sqliteMatchedIds, type SearchTerms } from './sql.js'

/**
 * Searches on SQLite. A file database's run on a reader thread (sqliteReader.ts); `:memory:`'s
 * on the event loop, where long work goes in slices (each a separate statement).
 *
 * A list first reads the newest NEWEST_SHARED matches of the index (one statement, shared with
 * the total asked at the same time):
 * - at most RARE_MATCHES: they are all the matches; their typed rows are filtered, sorted and paged. O(matches),
 *   whatever the number of jobs.
 * - more (a common word): walk the list's ordered index ranges (as an unfiltered list does), a
 *   row being a hit when it is among the known matches; a common word fills its page there.
 *   When the first slice does not fill the page (a filter the word's newest matches rarely pass:
 *   a subscriber's own jobs, `status=failed`), and the counters say the filter keeps at most
 *   FILTER_DRIVEN_MAX jobs, one statement walks the filter's side in sort order, each row a hit
 *   when it is among ALL the word's matches (SQLite reads the doclist once into a set: ~16 ms
 *   for 166,000 matches). Otherwise the walk goes on, older rows checked against the index over
 *   each slice's id range.
 * A total without other filters is the index's count (the doclist alone, to the cap); with a
 * small filter side, one statement as above; else it walks the index's matches in slices checking
 * the filters, until the cap or COUNT_BUDGET matches (then it is a lower bound).
 */

/** Up to this many index matches, a search starts from them (and they are the walk's membership set). */
export const RARE_MATCHES = 4000
/** Rows of the ordered walk per statement (×10 off the loop). */
export const WALK_SLICE = 2000
/** Index matches per counting statement (×4 off the loop: one statement reaches the 10,000 cap). */
export const COUNT_SLICE = 5000
/**
 * Index matches a total examines at most, when no cheaper way applies (a word in most jobs
 * behind a filter: the shared newest matches and one more slice, ~60 ms at a million jobs).
 * Past it the total is a lower bound (`totalCapped`).
 */
export const COUNT_BUDGET = 30_000
/** A filter keeping at most this many jobs (by the counters) drives a search's walk (see above). */
export const FILTER_DRIVEN_MAX = 100_000
/** …when the word has at most this many matches (their set costs ~0.1 µs each to build). */
export const FILTER_DRIVEN_MATCHES = 200_000
/**
 * The newest matches read once for a list and its total (JobQueries asks both at once): up to
 * the total's cap, so that a prefix shared by many words is merged by FTS5 once, not twice.
 */
export const NEWEST_SHARED = 10_001

/** The thresholds above, as a store uses them (tests use small ones to reach every plan). */
export interface SearchLimits {
  rareMatches: number
  newestShared: number
  walkSlice: number
  countSlice: number
  countBudget: number
  filterDrivenMax: number
  filterDrivenMatches: number
}
export const SEARCH_LIMITS: SearchLimits = {
  rareMatches: RARE_MATCHES,
  newestShared: NEWEST_SHARED,
  walkSlice: WALK_SLICE,
  countSlice: COUNT_SLICE,
  countBudget: COUNT_BUDGET,
  filterDrivenMax: FILTER_DRIVEN_MAX,
  filterDrivenMatches: FILTER_DRIVEN_MATCHES,
}

const inFlight = new WeakMap<SqliteSearchIo, Map<string, Promise<number[]>>>()

/** The newest NEWEST_SHARED matches (by post id), shared by the calls that ask meanwhile. */
function newestMatches(terms: SearchTerms, io: SqliteSearchIo): Promise<number[]> {
  const matched = sqliteMatchedIds(terms)
  const key = JSON.stringify(matched.values)
  let pending = inFlight.get(io)
  if (!pending) inFlight.set(io, (pending = new Map()))
  let newest = pending.get(key)
  if (!newest) {
    newest = io.all(`${matched.sql} ORDER BY 1 DESC LIMIT ?`, [...matched.values, io.limits.newestShared]).then((rows) => rows.map((row) => Number(row.id)))
    pending.set(key, newest)
    const forget = () => pending!.delete(key)
    newest.then(forget, forget)
  }
  return newest
}

/**
 * Whether the word likely has at most FILTER_DRIVEN_MATCHES matches, estimated without reading
 * its doclist (FTS5 merges a prefix's whole doclist for any statement): the share of matches
 * among the jobs as new as its newest known matches, times all jobs (the counters).
 */
async function fewEnoughToDrive(newest: number[], io: SqliteSearchIo): Promise<boolean> {
  if (newest.length < io.limits.newestShared) return true
  const [recent] = await io.all(`SELECT COUNT(*) AS n FROM job_state WHERE post_id >= ?`, [newest.at(-1)])
  const all = (await io.counts('')).reduce((sum, row) => sum + Number(row.n), 0)
  return (newest.length / Math.max(1, Number(recent?.n ?? 0))) * all <= io.limits.filterDrivenMatches
}

export interface SqliteSearchIo {
  /** One statement: in the store's queue (its own event-loop turn), or on a reader thread. */
  all(sql: string, values: unknown[]): Promise<Record<string, unknown>[]>
  read(postIds: number[]): Promise<StoredJob[]>
  /** Statements run off the event loop (sqliteReader.ts): fewer, larger slices. */
  offLoop(): boolean
  /** The job counters of one scope (JobStore.counts). */
  counts(scope: string): Promise<{ type: string; status: string; n: number }[]>
  limits: SearchLimits
}

type Filters = Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>

/** The query's filters other than the index (type, owner, source…) plus the exact data checks. */
function otherFilters(query: Filters, terms: SearchTerms): { sql: string[]; values: unknown[] } {
  const rest = filterSql({ ...query, search: undefined, dataFilters: undefined }, 'sqlite')
  const check = dataCheckSql('sqlite', terms.filters)
  return { sql: [...rest.sql, ...check.sql], values: [...rest.values, ...check.values] }
}

/** At most how many jobs the filters keep, by the counters (owner, type, status); others only narrow it. */
async function filterSide(query: Filters, io: SqliteSearchIo): Promise<number> {
  const rows = await io.counts(query.createdBy === undefined ? '' : `u:${query.createdBy}`)
  return rows
    .filter((row) => (query.type === undefined || row.type === query.type) && (!query.statuses?.length || query.statuses.includes(row.status as never)))
    .reduce((sum, row) => sum + Number(row.n), 0)
}

/** Only the index decides (no filter beside the words): a total is the index's count. */
const indexOnly = (query: Filters, terms: SearchTerms) =>
  terms.filters.length === 0 && otherFilters(query, terms).sql.length === 0 && !query.statuses?.length

/**
 * The page from the filter's side: one statement over job_state in sort order, each row a hit
 * when its id is among the index's matches (`+` keeps SQLite from driving from the matches).
 */
async function filterDriven(query: JobListQuery, terms: SearchTerms, io: SqliteSearchIo): Promise<number[]> {
  const { column, desc } = sortOf(query.sort)
  const dir = desc ? 'DESC' : 'ASC'
  const filters = otherFilters(query, terms)
  const statuses = statusSql(query)
  const matched = sqliteMatchedIds(terms)
  const where = [...statuses.sql, ...filters.sql, `+j.post_id IN (${matched.sql})`]
  const values: unknown[] = [...statuses.values, ...filters.values, ...matched.values]
  if (query.after) {
    where.push(`(j.${column} ${desc ? '<' : '>'} ? OR (j.${column} = ? AND j.post_id ${desc ? '<' : '>'} ?))`)
    values.push(query.after.value, query.after.value, query.after.postId)
  }
  const rows = await io.all(
    `SELECT j.post_id AS post_id FROM job_state j WHERE ${where.join(' AND ')} ORDER BY j.${column} ${dir}, j.post_id ${dir} LIMIT ? OFFSET ?`,
    [...values, query.limit, query.offset],
  )
  return rows.map((row) => Number(row.post_id))
}

function statusSql(query: Filters): { sql: string[]; values: unknown[] } {
  if (!query.statuses?.length) return { sql: [], values: [] }
  return { sql: [`j.status IN (${query.statuses.map(() => '?').join(', ')})`], values: [...query.statuses] }
}

export async function sqliteSearchList(query: JobListQuery, terms: SearchTerms, io: SqliteSearchIo): Promise<JobListPage> {
  const match = sqliteMatch(terms.words, terms.filters)
  if (matchesNothing(terms) || match === null) return { jobs: [], total: 0 }
  // The newest matches (by post id), one index statement: a common prefix is merged once here.
  const newest = await newestMatches(terms, io)
  const ids =
    newest.length <= io.limits.rareMatches ? await fromMatches(query, terms, newest, io) : await manyMatches(query, terms, newest, io)
  return { jobs: await io.read(ids), total: null }
}

/** A common word: the walk's first slice, then the filter's side or the rest of the walk. */
async function manyMatches(query: JobListQuery, terms: SearchTerms, newest: number[], io: SqliteSearchIo): Promise<number[]> {
  const first = await walk(query, terms, newest, io, true)
  if (first !== null) return first
  if ((await filterSide(query, io)) <= io.limits.filterDrivenMax && (await fewEnoughToDrive(newest, io))) return filterDriven(query, terms, io)
  return (await walk(query, terms, newest, io, false))!
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
 * With `firstSliceOnly`: null when the first slice leaves the page unfilled.
 */
async function walk(query: JobListQuery, terms: SearchTerms, newest: number[], io: SqliteSearchIo, firstSliceOnly: true): Promise<number[] | null>
async function walk(query: JobListQuery, terms: SearchTerms, newest: number[], io: SqliteSearchIo, firstSliceOnly: false): Promise<number[]>
async function walk(query: JobListQuery, terms: SearchTerms, newest: number[], io: SqliteSearchIo, firstSliceOnly: boolean): Promise<number[] | null> {
  const { desc } = sortOf(query.sort)
  const dir = desc ? 'DESC' : 'ASC'
  const want = query.offset + query.limit
  const base: JobListQuery = { ...query, search: undefined, dataFilters: undefined, statuses: query.statuses?.length ? query.statuses : JOB_STATUSES }
  const check = dataCheckSql('sqlite', terms.filters)
  const known = new Set(newest)
  const floor = newest.at(-1)!
  const hits: number[] = []
  const walkSlice = io.offLoop() ? io.limits.walkSlice * 5 : io.limits.walkSlice
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
    if (firstSliceOnly) return null
    const last = rows.at(-1)!
    after = { value: Number(last.sort_value), postId: Number(last.post_id) }
    size = Math.min(walkSlice, size * 4)
  }
  return hits.slice(query.offset, want)
}

/**
 * How many jobs match, counted slice by slice along the index, stopping past `cap`, or
 * incomplete after COUNT_BUDGET index matches.
 */
export async function sqliteSearchCount(query: Filters, terms: SearchTerms, cap: number, io: SqliteSearchIo): Promise<CountResult> {
  const match = sqliteMatch(terms.words, terms.filters)
  if (matchesNothing(terms) || match === null) return { n: 0, complete: true }
  const filters = otherFilters(query, terms)
  const statuses = statusSql(query)
  if (indexOnly(query, terms)) {
    // Every index row is a job's (deleted with it): the doclist alone, read to the cap.
    if (cap <= io.limits.newestShared) return { n: Math.min((await newestMatches(terms, io)).length, cap), complete: true }
    const matched = sqliteMatchedIds(terms)
    const [row] = await io.all(`SELECT COUNT(*) AS n FROM (${matched.sql} LIMIT ?)`, [...matched.values, cap])
    return { n: Number(row?.n ?? 0), complete: true }
  }
  const newest = await newestMatches(terms, io)
  if ((await filterSide(query, io)) <= io.limits.filterDrivenMax && (await fewEnoughToDrive(newest, io))) {
    const matched = sqliteMatchedIds(terms)
    const where = [...statuses.sql, ...filters.sql, `+j.post_id IN (${matched.sql})`]
    const [row] = await io.all(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM job_state j WHERE ${where.join(' AND ')} LIMIT ?)`, [
      ...statuses.values,
      ...filters.values,
      ...matched.values,
      cap,
    ])
    return { n: Number(row?.n ?? 0), complete: true }
  }
  // Along the index, newest first: the shared newest matches, then slices below them.
  const conditions = [...statuses.sql, ...filters.sql]
  const pass = conditions.length ? `j.post_id IS NOT NULL AND ${conditions.join(' AND ')}` : 'j.post_id IS NOT NULL'
  const countSlice = io.offLoop() ? io.limits.countSlice * 4 : io.limits.countSlice
  const tally = async (from: string, values: unknown[]) => {
    const [row] = await io.all(
      `SELECT COUNT(*) AS seen, MIN(c.id) AS low, COALESCE(SUM(CASE WHEN ${pass} THEN 1 ELSE 0 END), 0) AS n
       FROM (${from}) c LEFT JOIN job_state j ON j.post_id = c.id`,
      [...statuses.values, ...filters.values, ...values],
    )
    return { seen: Number(row?.seen ?? 0), low: Number(row?.low ?? 0), n: Number(row?.n ?? 0) }
  }
  const first = await tally('SELECT value AS id FROM json_each(?)', [JSON.stringify(newest)])
  let counted = first.n
  let examined = first.seen
  let below = first.low
  if (counted >= cap || newest.length < io.limits.newestShared) return { n: Math.min(counted, cap), complete: true }
  for (;;) {
    if (examined >= io.limits.countBudget) return { n: counted, complete: false }
    const slice = sqliteMatchedIds(terms, { sql: (id) => `${id} < ?`, values: [below] })
    const next = await tally(`${slice.sql} ORDER BY 1 DESC LIMIT ?`, [...slice.values, countSlice])
    counted += next.n
    examined += next.seen
    if (counted >= cap || next.seen < countSlice) return { n: Math.min(counted, cap), complete: true }
    below = next.low
  }
}
