import { createHash } from 'node:crypto'
import type { Knex } from 'knex'
import type pg from 'pg'
import type { JobStatus } from '../../contract.js'
import {
  countSql,
  INSERT_COLUMNS,
  listSql,
  numbered,
  patchSql,
  queueSql,
  REORDER_FENCE,
  sortOf,
  STATE_COLUMNS,
  stateFromRow,
  columnValue,
} from './jobSql.js'
import { queueOrderSql } from '../../registry/queueOrder.js'
import {
  FINAL_STATUSES_LIST,
  type ClaimRequest,
  type CountResult,
  type CountRow,
  type JobChange,
  type JobCompletion,
  type JobListPage,
  type JobListQuery,
  type JobState,
  type JobStore,
  type MinuteRow,
  type NewJob,
  type QueueQuery,
  type ReorderOutcome,
  type ReorderRequest,
  type StoredJob,
} from './JobStore.js'
import { postgresSearchRow } from './search/document.js'
import { postgresCountOf, postgresMatches, postgresPageOf, type PostgresMatches } from './search/postgresSearch.js'
import { searchTerms, type SearchTerms } from './search/sql.js'

/** Jobs inserted per statement (one JSON parameter each). */
const INSERT_CHUNK = 1000
/** Advisory lock key of the counter fold (one instance at a time). */
const FOLD_LOCK = 7_310_001
/** work_mem of a search's transaction (its GIN bitmaps stay exact at a million jobs). */
const SEARCH_WORK_MEM = '32MB'
/** How long a common word's total may be counted before it is given as a lower bound. */
const SEARCH_COUNT_BUDGET_MS = 40
/** A word in at least this share of the newest jobs is counted row by row (the cap comes soon). */
const DENSE_SHARE = 0.5
/** SQLSTATE of a statement cancelled by statement_timeout. */
const QUERY_CANCELED = '57014'

/** `SELECT` list of a stored job: its typed row, post slug and title, and its meta as one JSON object. */
const JOB_COLUMNS = `j.*, p.slug AS slug, p.title AS title,
  (SELECT json_object_agg(m.meta_key, m.meta_value) FROM post_meta m WHERE m.post_id = j.post_id AND m.meta_value IS NOT NULL) AS meta`

const SQL_TYPES: Record<(typeof INSERT_COLUMNS)[number], string> = {
  type: 'text', status: 'text', queued: 'smallint', delayed: 'smallint', priority: 'integer', runAt: 'bigint',
  attempts: 'integer', maxAttempts: 'integer', attemptToken: 'text', lockedUntil: 'bigint', progress: 'smallint',
  timeoutMs: 'bigint', showNotification: 'smallint', createdBy: 'integer', owner: 'text', source: 'text',
  parentJobId: 'text', pausedFrom: 'text', createdAt: 'bigint', updatedAt: 'bigint', startedAt: 'bigint', completedAt: 'bigint',
}

interface Pending<I, O> {
  items: I[]
  resolve(value: O[]): void
  reject(error: unknown): void
}

/**
 * The job store on PostgreSQL: one round trip per move. Every statement is a named prepared
 * statement (parsed once per connection); changes carry their fence (status, attempt token,
 * expired lease) in the WHERE and their meta writes in the same statement (data-modifying CTEs),
 * and return the new row, so nothing is read back. Claims are `UPDATE … FROM (… FOR UPDATE SKIP
 * LOCKED)`. Creates and completions that arrive in the same event-loop turn share one statement.
 */
export class PostgresJobStore implements JobStore {
  readonly dialect = 'postgres' as const
  /** Sees every statement with its parameters (tests explain their plans). */
  trace?: (sql: string, values: unknown[]) => void
  private readonly names = new Map<string, string>()
  private inserts: Pending<NewJob, number>[] = []
  private completions: Pending<JobCompletion, JobState | null>[] = []
  private flushScheduled = false

  /**
   * `searchRareMatches`: up to how many matches a search starts from them; `searchCountBudgetMs`:
   * how long a common word's total may be counted (both smaller in tests).
   */
  constructor(
    private readonly knex: Knex,
    private readonly options: { searchRareMatches?: number; searchCountBudgetMs?: number } = {},
  ) {}

  // ------------------------------------------------------------------------------------------
  // The engine

  private nameOf(text: string): string {
    let name = this.names.get(text)
    if (!name) this.names.set(text, (name = `jp_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`))
    return name
  }

  /** Runs one prepared (named, parsed once per connection) and traced statement on `client`. */
  private async run<R>(client: pg.Client, sql: string, values: unknown[]): Promise<R[]> {
    const text = numbered(sql)
    this.trace?.(text, values)
    return (await client.query({ name: this.nameOf(text), text, values })).rows as R[]
  }

  /** One prepared statement (`?` placeholders) on a pooled connection. */
  private async query<R = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<R[]> {
    const client = (await this.knex.client.acquireConnection()) as pg.Client
    try {
      return await this.run<R>(client, sql, values)
    } finally {
      await this.knex.client.releaseConnection(client)
    }
  }

  /**
   * An explicit transaction on one pooled connection, with the same prepared statements; it
   * commits when `commitIf(value)` holds, else rolls back (a fence that did not hold).
   */
  private async transaction<T>(
    work: (run: (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>, client: pg.Client) => Promise<T>,
    commitIf: (value: T) => boolean,
    begin = 'BEGIN',
  ): Promise<T> {
    const client = (await this.knex.client.acquireConnection()) as pg.Client
    try {
      await client.query(begin)
      const value = await work((sql, values) => this.run(client, sql, values), client)
      await client.query(commitIf(value) ? 'COMMIT' : 'ROLLBACK')
      return value
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    } finally {
      await this.knex.client.releaseConnection(client)
    }
  }

  private schedule() {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      const inserts = this.inserts.splice(0)
      const completions = this.completions.splice(0)
      if (inserts.length) void this.flushInserts(inserts)
      if (completions.length) void this.flushCompletions(completions)
    })
  }

  // ------------------------------------------------------------------------------------------
  // Reads

  private toStored(row: Record<string, unknown>): StoredJob {
    const meta = (row.meta ?? {}) as Record<string, string>
    return { jobId: String(row.slug), name: String(row.title), state: stateFromRow(row), meta }
  }

  async getByJobId(jobId: string): Promise<StoredJob | null> {
    const [row] = await this.query(
      `SELECT ${JOB_COLUMNS} FROM posts p JOIN job_state j ON j.post_id = p.id WHERE p.post_type_slug = 'jobs' AND p.slug = ?`,
      [jobId],
    )
    return row ? this.toStored(row) : null
  }

  async getByJobIds(jobIds: readonly string[]): Promise<StoredJob[]> {
    if (jobIds.length === 0) return []
    const rows = await this.query(
      `SELECT ${JOB_COLUMNS} FROM posts p JOIN job_state j ON j.post_id = p.id WHERE p.post_type_slug = 'jobs' AND p.slug = ANY(?::text[])`,
      [[...jobIds]],
    )
    return rows.map((row) => this.toStored(row))
  }

  async getByPostIds(postIds: readonly number[]): Promise<StoredJob[]> {
    if (postIds.length === 0) return []
    const rows = await this.query(`SELECT ${JOB_COLUMNS} FROM job_state j JOIN posts p ON p.id = j.post_id WHERE j.post_id = ANY(?::int[])`, [postIds])
    const byId = new Map(rows.map((row) => [Number(row.post_id), this.toStored(row)]))
    return postIds.flatMap((id) => byId.get(id) ?? [])
  }

  /**
   * A search's statements, in one read transaction with room for its bitmaps: a common prefix's
   * GIN bitmap (166,000 of 1M jobs) went lossy in the default 4 MB of work_mem, and rechecking
   * every row of its pages took 500 ms instead of 50.
   */
  private searchSession<T>(work: (run: (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>, client: pg.Client) => Promise<T>): Promise<T> {
    return this.transaction(work, () => true, `BEGIN READ ONLY; SET LOCAL work_mem = '${SEARCH_WORK_MEM}'`)
  }

  private readonly fewInFlight = new Map<string, Promise<PostgresMatches>>()

  /** postgresMatches, shared by the calls that ask meanwhile (a page and its total ask at once). */
  private fewMatches(
    terms: SearchTerms,
    createdBy: number | undefined,
    run: (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>,
  ): Promise<PostgresMatches> {
    const key = JSON.stringify([terms.words, terms.filters, createdBy])
    let few = this.fewInFlight.get(key)
    if (!few) {
      few = postgresMatches(terms, run, this.options.searchRareMatches, createdBy)
      this.fewInFlight.set(key, few)
      const forget = () => this.fewInFlight.delete(key)
      few.then(forget, forget)
    }
    return few
  }

  async list(query: JobListQuery): Promise<JobListPage> {
    const terms = searchTerms(query)
    const pageOf = async (run: (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>) => {
      const few = terms ? (await this.fewMatches(terms, query.createdBy, run)).few : null
      const page = terms && few ? postgresPageOf(query, terms, few) : listSql(query, 'postgres')
      return run(
        `WITH page AS (${page.sql}) SELECT page.sort_value AS sort_value, ${JOB_COLUMNS} FROM page JOIN job_state j ON j.post_id = page.post_id JOIN posts p ON p.id = j.post_id`,
        page.values,
      )
    }
    const rows = terms ? await this.searchSession(pageOf) : await pageOf((sql, values) => this.query(sql, values))
    const { desc } = sortOf(query.sort)
    const sign = desc ? -1 : 1
    rows.sort((a, b) => sign * (Number(a.sort_value) - Number(b.sort_value) || Number(a.post_id) - Number(b.post_id)))
    return { jobs: rows.map((row) => this.toStored(row)), total: null }
  }

  async count(query: Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>, cap: number): Promise<CountResult> {
    type Run = (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>
    const counted = async (run: Run, { sql, values }: { sql: string; values: unknown[] }): Promise<CountResult> => {
      const [row] = await run(sql, values)
      return { n: Number(row?.n ?? 0), complete: true }
    }
    const terms = searchTerms(query)
    if (!terms) return counted((sql, values) => this.query(sql, values), countSql(query, cap, 'postgres'))
    return this.searchSession(async (run, client) => {
      const { few, density } = await this.fewMatches(terms, query.createdBy, run)
      if (few) return counted(run, postgresCountOf(query, terms, few))
      // A common word: counted within a time budget, else the total is a lower bound (the page's).
      await client.query(`SET LOCAL statement_timeout = ${this.options.searchCountBudgetMs ?? SEARCH_COUNT_BUDGET_MS}`)
      try {
        // A word in most jobs reaches the cap soonest checked row by row; else as a set.
        return await counted(run, countSql(query, cap, 'postgres', density >= DENSE_SHARE ? 'perRow' : undefined))
      } catch (error) {
        if ((error as { code?: string }).code === QUERY_CANCELED) return { n: 0, complete: false }
        throw error
      }
    })
  }

  async counts(scope: string): Promise<CountRow[]> {
    const rows = await this.query<{ type: string; status: JobStatus; n: string }>(
      `SELECT type, status, SUM(n) AS n FROM (
         SELECT type, status, n FROM job_counts WHERE owner = ?
         UNION ALL SELECT type, status, n FROM job_count_deltas WHERE owner = ?) c
       GROUP BY type, status HAVING SUM(n) <> 0`,
      [scope, scope],
    )
    return rows.map((row) => ({ type: row.type, status: row.status, n: Number(row.n) }))
  }

  async minutes(scope: string, since: number): Promise<MinuteRow[]> {
    const rows = await this.query<Record<string, string>>(
      `SELECT minute, SUM(created) AS created, SUM(completed) AS completed, SUM(failed) AS failed, SUM(finished) AS finished, SUM(duration_ms) AS duration_ms
       FROM (SELECT minute, created, completed, failed, finished, duration_ms FROM job_minute_counts WHERE owner = ? AND minute >= ?
             UNION ALL SELECT minute, created, completed, failed, finished, duration_ms FROM job_minute_deltas WHERE owner = ? AND minute >= ?) c
       GROUP BY minute ORDER BY minute`,
      [scope, since, scope, since],
    )
    return rows.map((row) => ({
      minute: Number(row.minute),
      created: Number(row.created),
      completed: Number(row.completed),
      failed: Number(row.failed),
      finished: Number(row.finished),
      durationMs: Number(row.duration_ms),
    }))
  }

  // ------------------------------------------------------------------------------------------
  // Creates

  /** Posts, typed rows and meta of many jobs in one statement (one JSON parameter). */
  private static readonly INSERT_SQL = `
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(?::jsonb) AS x(i int, job_id text, name text, created text, meta jsonb, search_tsv text, search_kv text[],
        ${INSERT_COLUMNS.map((key) => `${STATE_COLUMNS[key]} ${SQL_TYPES[key]}`).join(', ')})
    ),
    new_posts AS (
      INSERT INTO posts (post_type_slug, title, slug, status, created_at, updated_at)
      SELECT 'jobs', name, job_id, 'publish', created, created FROM input ORDER BY i
      RETURNING id, slug
    ),
    new_state AS (
      INSERT INTO job_state (post_id, ${INSERT_COLUMNS.map((key) => STATE_COLUMNS[key]).join(', ')})
      SELECT p.id, ${INSERT_COLUMNS.map((key) => `x.${STATE_COLUMNS[key]}`).join(', ')} FROM input x JOIN new_posts p ON p.slug = x.job_id
    ),
    new_meta AS (
      INSERT INTO post_meta (post_id, meta_key, meta_value)
      SELECT p.id, m.key, m.value FROM input x JOIN new_posts p ON p.slug = x.job_id CROSS JOIN LATERAL jsonb_each_text(x.meta) m
    ),
    new_search AS (
      INSERT INTO job_search (post_id, doc, kv)
      SELECT p.id, x.search_tsv::tsvector, x.search_kv FROM input x JOIN new_posts p ON p.slug = x.job_id
    ),
    -- The index rows are written above: the search triggers skip this statement (migration 013).
    indexed AS (SELECT set_config('jobpost.search_written', statement_timestamp()::text, true) AS at)
    SELECT id, slug FROM new_posts CROSS JOIN indexed`

  private insertParameter(jobs: readonly NewJob[]): string {
    return JSON.stringify(
      jobs.map((job, i) => {
        const search = postgresSearchRow(job.name, job.meta, job.state.createdBy)
        const row: Record<string, unknown> = {
          i, job_id: job.jobId, name: job.name, created: new Date(job.state.createdAt).toISOString(), meta: job.meta,
          search_tsv: search.tsv, search_kv: search.kv,
        }
        for (const key of INSERT_COLUMNS) row[STATE_COLUMNS[key]] = columnValue(key, job.state[key as keyof NewJob['state']])
        return row
      }),
    )
  }

  private async insertChunk(jobs: readonly NewJob[], run: (sql: string, values: unknown[]) => Promise<Record<string, unknown>[]>): Promise<number[]> {
    const rows = await run(PostgresJobStore.INSERT_SQL, [this.insertParameter(jobs)])
    const ids = new Map(rows.map((row) => [String(row.slug), Number(row.id)]))
    return jobs.map((job) => ids.get(job.jobId)!)
  }

  insert(jobs: NewJob[]): Promise<number[]> {
    if (jobs.length === 0) return Promise.resolve([])
    if (jobs.length > INSERT_CHUNK) return this.insertLarge(jobs)
    return new Promise((resolve, reject) => {
      this.inserts.push({ items: jobs, resolve, reject })
      this.schedule()
    })
  }

  /** Creates of one turn: one statement; if it fails, each caller's jobs again on their own. */
  private async flushInserts(batch: Pending<NewJob, number>[]) {
    const all = batch.flatMap((pending) => pending.items)
    try {
      if (all.length > INSERT_CHUNK) throw new Error('split')
      const ids = await this.insertChunk(all, (sql, values) => this.query(sql, values))
      let offset = 0
      for (const pending of batch) {
        pending.resolve(ids.slice(offset, offset + pending.items.length))
        offset += pending.items.length
      }
    } catch (error) {
      if (batch.length === 1 && all.length <= INSERT_CHUNK) return batch[0]!.reject(error)
      for (const pending of batch) {
        this.insertLarge(pending.items).then(pending.resolve, pending.reject)
      }
    }
  }

  /** Many jobs: chunked statements in one transaction (atomic). */
  private insertLarge(jobs: NewJob[]): Promise<number[]> {
    return this.transaction(async (run) => {
      const ids: number[] = []
      for (let i = 0; i < jobs.length; i += INSERT_CHUNK) ids.push(...(await this.insertChunk(jobs.slice(i, i + INSERT_CHUNK), run)))
      return ids
    }, () => true)
  }


  // ------------------------------------------------------------------------------------------
  // Moves

  async change(change: JobChange, now: number): Promise<JobState | null> {
    const { sql, values } = this.changeSql(change, now)
    const [row] = await this.query(sql, values)
    return row ? stateFromRow(row) : null
  }

  /** A fenced change and new jobs in one transaction on one connection (see JobStore). */
  async changeAndInsert(change: JobChange, jobs: NewJob[], now: number): Promise<{ state: JobState; postIds: number[] } | null> {
    return this.transaction(
      async (run) => {
        const { sql, values } = this.changeSql(change, now)
        const [row] = await run(sql, values)
        if (!row) return null
        const postIds = jobs.length ? await this.insertChunk(jobs, run) : []
        return { state: stateFromRow(row), postIds }
      },
      (outcome) => outcome !== null,
    )
  }

  private changeSql(change: JobChange, now: number): { sql: string; values: unknown[] } {
    const ctes: string[] = []
    const values: unknown[] = []
    const where = ['post_id = ?', 'status = ANY(?::text[])']
    const meta = { ...change.meta }
    // A meta fence is a compare-and-set on the meta row itself: its row lock and re-check under
    // READ COMMITTED make concurrent writers wait and then see the new value (a subquery in the
    // job's UPDATE would see only its snapshot). A key both fenced and written is set here.
    for (const [index, [key, expected]] of Object.entries(change.metaEquals ?? {}).entries()) {
      if (expected === null) continue
      const next = meta[key] ?? expected
      delete meta[key]
      ctes.push(`fence${index} AS (UPDATE post_meta SET meta_value = ? WHERE post_id = ? AND meta_key = ? AND meta_value = ?
        AND EXISTS (SELECT 1 FROM job_state s WHERE s.post_id = ? AND s.status = ANY(?::text[])) RETURNING 1)`)
      values.push(next, change.postId, key, expected, change.postId, [...change.from])
      where.push(`EXISTS (SELECT 1 FROM fence${index})`)
    }
    const patch = patchSql({ updatedAt: now, ...change.set })
    values.push(...patch.values, change.postId, [...change.from])
    if (change.token !== undefined) where.push('attempt_token = ?'), values.push(change.token)
    if (change.lockedBefore !== undefined) where.push('locked_until < ?'), values.push(change.lockedBefore)
    for (const [key, expected] of Object.entries(change.metaEquals ?? {})) {
      if (expected !== null) continue
      where.push('NOT EXISTS (SELECT 1 FROM post_meta f WHERE f.post_id = job_state.post_id AND f.meta_key = ?)')
      values.push(key)
    }
    ctes.push(`moved AS (UPDATE job_state SET ${patch.sql} WHERE ${where.join(' AND ')} RETURNING *)`)
    const entries = Object.entries(meta)
    const upserts = entries.filter(([, value]) => value !== null)
    const deletes = entries.filter(([, value]) => value === null).map(([key]) => key)
    if (upserts.length) {
      ctes.push(`upserted AS (INSERT INTO post_meta (post_id, meta_key, meta_value)
        SELECT moved.post_id, m.k, m.v FROM moved, unnest(?::text[], ?::text[]) AS m(k, v)
        ON CONFLICT (post_id, meta_key) DO UPDATE SET meta_value = EXCLUDED.meta_value)`)
      values.push(upserts.map(([key]) => key), upserts.map(([, value]) => value))
    }
    if (deletes.length) {
      ctes.push(`removed AS (DELETE FROM post_meta WHERE post_id IN (SELECT post_id FROM moved) AND meta_key = ANY(?::text[]))`)
      values.push(deletes)
    }
    return { sql: `WITH ${ctes.join(', ')} SELECT * FROM moved`, values }
  }

  complete(completions: JobCompletion[]): Promise<(JobState | null)[]> {
    if (completions.length === 0) return Promise.resolve([])
    return new Promise((resolve, reject) => {
      this.completions.push({ items: completions, resolve, reject })
      this.schedule()
    })
  }

  /** Completions of one turn in one statement, each fenced by its status and attempt token. */
  private async flushCompletions(batch: Pending<JobCompletion, JobState | null>[]) {
    const all = batch.flatMap((pending) => pending.items)
    try {
      const rows = await this.query(
        `WITH v AS (SELECT * FROM unnest(?::int[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::boolean[], ?::text[]) AS v(post_id, token, status, result, at, clear_error, result_words)),
         done AS (
           UPDATE job_state j SET status = v.status, progress = 100, completed_at = v.at, updated_at = v.at,
             attempt_token = NULL, locked_until = NULL, paused_from = NULL
           FROM v WHERE j.post_id = v.post_id AND j.status = 'running' AND j.attempt_token = v.token
           RETURNING j.*),
         results AS (
           INSERT INTO post_meta (post_id, meta_key, meta_value) SELECT d.post_id, 'result', v.result FROM done d JOIN v ON v.post_id = d.post_id
           WHERE v.result IS NOT NULL ON CONFLICT (post_id, meta_key) DO UPDATE SET meta_value = EXCLUDED.meta_value),
         cleared AS (DELETE FROM post_meta WHERE meta_key = 'error_message' AND post_id IN (SELECT d.post_id FROM done d JOIN v ON v.post_id = d.post_id WHERE v.clear_error)),
         -- A job's first result adds its words to the index row (built in JavaScript); the search
         -- triggers then skip the row (its stmt is this statement's). A replaced result or a
         -- cleared error leaves words to remove: the triggers rebuild those rows.
         indexed AS (
           UPDATE job_search s SET doc = s.doc || v.result_words::tsvector, stmt = statement_timestamp()
           FROM done d JOIN v ON v.post_id = d.post_id
           WHERE s.post_id = d.post_id AND v.result_words IS NOT NULL AND NOT v.clear_error
             AND NOT EXISTS (SELECT 1 FROM post_meta m WHERE m.post_id = d.post_id AND m.meta_key = 'result'))
         SELECT * FROM done`,
        [
          all.map((c) => c.postId),
          all.map((c) => c.token),
          all.map((c) => c.status),
          all.map((c) => c.result),
          all.map((c) => c.now),
          all.map((c) => c.clearError),
          all.map((c) => (c.result === null ? null : postgresSearchRow('', { result: c.result }).tsv)),
        ],
      )
      const byId = new Map(rows.map((row) => [Number(row.post_id), stateFromRow(row)]))
      for (const pending of batch) pending.resolve(pending.items.map((item) => byId.get(item.postId) ?? null))
    } catch (error) {
      for (const pending of batch) pending.reject(error)
    }
  }

  async claim(request: ClaimRequest): Promise<StoredJob[]> {
    const slots = request.slots.filter(([, n]) => n > 0)
    if (slots.length === 0 || request.limit <= 0) return []
    const rows = await this.query(
      `WITH picked AS (
         SELECT c.post_id FROM unnest(?::text[], ?::int[]) AS s(type, n)
         CROSS JOIN LATERAL (
           SELECT post_id, priority, run_at FROM job_state
           WHERE type = s.type AND status = 'pending' AND queued = 1 AND delayed = 0 AND run_at <= ?
           ORDER BY ${queueOrderSql()} LIMIT s.n
           FOR UPDATE SKIP LOCKED) c
         ORDER BY ${queueOrderSql('c')} LIMIT ?),
       claimed AS (
         UPDATE job_state j SET status = 'running', attempts = j.attempts + 1, attempt_token = gen_random_uuid()::text,
           locked_until = ?, started_at = COALESCE(j.started_at, ?), updated_at = ?, paused_from = NULL
         FROM picked WHERE j.post_id = picked.post_id
         RETURNING j.*)
       SELECT ${JOB_COLUMNS} FROM claimed j JOIN posts p ON p.id = j.post_id
       ORDER BY ${queueOrderSql('j')}`,
      [slots.map(([type]) => type), slots.map(([, n]) => n), request.now, request.limit, request.now + request.leaseMs, request.now, request.now],
    )
    return rows.map((row) => this.toStored(row))
  }

  async promoteDue(now: number): Promise<{ promoted: number; nextDueAt: number | null }> {
    const [row] = await this.query<{ promoted: string; next: string | null }>(
      `WITH due AS (
         UPDATE job_state SET delayed = 0 WHERE post_id IN (
           SELECT post_id FROM job_state WHERE status = 'pending' AND delayed = 1 AND run_at <= ?
           ORDER BY run_at LIMIT 5000 FOR UPDATE SKIP LOCKED)
         RETURNING 1)
       SELECT (SELECT COUNT(*) FROM due) AS promoted,
              (SELECT MIN(run_at) FROM job_state WHERE status = 'pending' AND delayed = 1 AND run_at > ?) AS next`,
      [now, now],
    )
    return { promoted: Number(row?.promoted ?? 0), nextDueAt: row?.next == null ? null : Number(row.next) }
  }

  async renewLeases(tokens: readonly string[], until: number, now: number): Promise<number[]> {
    if (tokens.length === 0) return []
    const rows = await this.query<{ post_id: number }>(
      `UPDATE job_state SET locked_until = ?, updated_at = ? WHERE attempt_token = ANY(?::text[]) AND status = 'running' RETURNING post_id`,
      [until, now, [...tokens]],
    )
    return rows.map((row) => Number(row.post_id))
  }

  async expiredLeases(now: number, limit: number): Promise<StoredJob[]> {
    const rows = await this.query(
      `SELECT ${JOB_COLUMNS} FROM job_state j JOIN posts p ON p.id = j.post_id
       WHERE j.locked_until < ? ORDER BY j.locked_until LIMIT ?`,
      [now, limit],
    )
    return rows.map((row) => this.toStored(row))
  }

  async deleteIf(postId: number, statuses: readonly JobStatus[]): Promise<boolean> {
    // The typed row is locked first, so a concurrent status change is seen (and re-checked).
    const rows = await this.query(
      `DELETE FROM posts WHERE id IN (SELECT post_id FROM job_state WHERE post_id = ? AND status = ANY(?::text[]) FOR UPDATE) RETURNING id`,
      [postId, [...statuses]],
    )
    return rows.length === 1
  }

  async deleteFinishedBefore(cutoff: number, limit: number): Promise<number> {
    const branches = FINAL_STATUSES_LIST.map(
      (_, index) =>
        `SELECT * FROM (SELECT post_id, completed_at FROM job_state WHERE status = ? AND completed_at > 0 AND completed_at < ? ORDER BY completed_at LIMIT ?) AS f${index}`,
    )
    const rows = await this.query(
      `DELETE FROM posts WHERE id IN (SELECT post_id FROM (${branches.join(' UNION ALL ')}) AS due ORDER BY completed_at LIMIT ?) RETURNING id`,
      [...FINAL_STATUSES_LIST.flatMap((status) => [status, cutoff, limit]), limit],
    )
    return rows.length
  }

  async listQueue(query: QueueQuery): Promise<{ jobs: StoredJob[]; total: number }> {
    const { sql, values, countSql: count, countValues } = queueSql(query)
    const [ids, counted] = await Promise.all([this.query<{ post_id: number }>(sql, values), this.query<{ n: string }>(count, countValues)])
    return { jobs: await this.getByPostIds(ids.map((row) => Number(row.post_id))), total: Number(counted[0]?.n ?? 0) }
  }

  /**
   * One explicit transaction on one connection: the listed rows are locked (in post id order, so
   * two reorders cannot deadlock; a claim skips them meanwhile), checked, then moved by one UPDATE.
   */
  async reorder(request: ReorderRequest): Promise<ReorderOutcome> {
    return this.transaction<ReorderOutcome>(
      async (run) => {
        const movable = await run(
          `SELECT post_id FROM job_state WHERE post_id = ANY(?::int[]) AND ${REORDER_FENCE} ORDER BY post_id FOR UPDATE`,
          [request.postIds, request.now],
        )
        const locked = new Set(movable.map((row) => Number(row.post_id)))
        const missing = request.postIds.find((id) => !locked.has(id))
        if (missing !== undefined) return { ok: false, postId: missing }
        const rows = await run(
          `UPDATE job_state j SET priority = ?, run_at = v.run_at, delayed = 0, updated_at = ?
           FROM unnest(?::int[], ?::bigint[]) AS v(post_id, run_at) WHERE j.post_id = v.post_id RETURNING j.*`,
          [request.priority, request.now, request.postIds, request.runAts],
        )
        const byId = new Map(rows.map((row) => [Number(row.post_id), stateFromRow(row)]))
        return { ok: true, states: request.postIds.map((id) => byId.get(id)!) }
      },
      (outcome) => outcome.ok,
    )
  }

  /** Folds the counter deltas into the totals (one instance at a time, by advisory lock). */
  async maintain(): Promise<void> {
    await this.query(
      `WITH got AS (SELECT pg_try_advisory_xact_lock(${FOLD_LOCK}) AS locked),
       d AS (DELETE FROM job_count_deltas WHERE (SELECT locked FROM got) RETURNING owner, type, status, n)
       INSERT INTO job_counts (owner, type, status, n) SELECT owner, type, status, SUM(n) FROM d GROUP BY owner, type, status
       ON CONFLICT (owner, type, status) DO UPDATE SET n = job_counts.n + EXCLUDED.n`,
    )
    await this.query(
      `WITH got AS (SELECT pg_try_advisory_xact_lock(${FOLD_LOCK + 1}) AS locked),
       d AS (DELETE FROM job_minute_deltas WHERE (SELECT locked FROM got) RETURNING *)
       INSERT INTO job_minute_counts (owner, minute, created, completed, failed, finished, duration_ms)
       SELECT owner, minute, SUM(created), SUM(completed), SUM(failed), SUM(finished), SUM(duration_ms) FROM d GROUP BY owner, minute
       ON CONFLICT (owner, minute) DO UPDATE SET created = job_minute_counts.created + EXCLUDED.created,
         completed = job_minute_counts.completed + EXCLUDED.completed, failed = job_minute_counts.failed + EXCLUDED.failed,
         finished = job_minute_counts.finished + EXCLUDED.finished, duration_ms = job_minute_counts.duration_ms + EXCLUDED.duration_ms`,
    )
  }

  async close(): Promise<void> {
    while (this.flushScheduled) await new Promise((resolve) => setImmediate(resolve))
  }
}
