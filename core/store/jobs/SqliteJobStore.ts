/// <reference path="../../types/better-sqlite3.d.ts" />
import type { Knex } from 'knex'
import type BetterSqlite3 from 'better-sqlite3'
import { performance } from 'node:perf_hooks'
import type { JobStatus } from '../../contract.js'
import {
  assemble,
  countSql,
  INSERT_COLUMNS,
  insertValues,
  listSql,
  metaFenceSql,
  patchSql,
  queueSql,
  REORDER_FENCE,
  STATE_COLUMNS,
  stateFromRow,
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
  type MetaPatch,
  type MinuteRow,
  type NewJob,
  type QueueQuery,
  type ReorderOutcome,
  type ReorderRequest,
  type StoredJob,
} from './JobStore.js'
import { searchTerms } from './search/sql.js'
import { SEARCH_LIMITS, sqliteSearchCount, sqliteSearchList, type SearchLimits, type SqliteSearchIo } from './search/sqliteSearch.js'
import { maintainSearchIndex, PendingSearchIndex, touchesSearch } from './search/sqliteIndex.js'
import { SqliteSearchReader } from './search/sqliteReader.js'

type Db = BetterSqlite3.Database
type Statement = BetterSqlite3.Statement

type Work =
  | {
      kind: 'sync'
      run(db: Db): unknown
      resolve(value: unknown): void
      reject(error: unknown): void
      /** Reads or deletes search index rows: the transaction's held index rows are written first. */
      touchesIndex?: boolean
    }
  | { kind: 'async'; run(db: Db, yieldLoop: () => Promise<void>): Promise<unknown>; resolve(value: unknown): void; reject(error: unknown): void }

/** A transaction of queued work gives the connection back after this long (the loop's budget). */
const SLICE_MS = 20
/** A cleanup chunk aims at this many ms of the loop. */
const DELETE_SLICE_MS = 10
const MAX_DELETE_CHUNK = 1000
/** Rows written per slice by a large insert (which keeps its one transaction across slices). */
const INSERT_CHUNK = 200

const statementCaches = new WeakMap<Db, Map<string, Statement>>()

/**
 * The job store on SQLite: statements prepared once on the raw better-sqlite3 connection (the
 * one of knex's pool, so knex's cold paths and this store never interleave inside a
 * transaction). Work that arrives in the same event-loop turn is group-committed: one
 * `BEGIN IMMEDIATE … COMMIT` for all of it, each piece in its own savepoint so that one failure
 * (a foreign key, say) fails only its caller. Nothing blocks the loop for long: a transaction
 * stops taking work after SLICE_MS, and large inserts yield between chunks.
 */
export class SqliteJobStore implements JobStore {
  readonly dialect = 'sqlite' as const
  /** Sees every statement with its parameters (tests explain their plans). */
  trace?: (sql: string, values: unknown[]) => void
  private queue: Work[] = []
  /** Rows per cleanup chunk, adapted to keep each one near DELETE_SLICE_MS. */
  private deleteChunk = 100
  private flushing = false
  /** Index rows of the open transaction, written just before its COMMIT (search/sqliteIndex.ts). */
  private readonly pendingIndex = new PendingSearchIndex()

  /** `searchLimits`: the search plans' thresholds (search/sqliteSearch.ts), smaller in tests. */
  constructor(
    private readonly knex: Knex,
    options: { searchLimits?: SearchLimits } = {},
  ) {
    this.searchIo = {
      all: (sql, values) => {
        const reader = this.searchReader()
        if (reader) return reader.all(sql, values)
        return this.run((db) => this.statement(db, sql).all(...values) as Record<string, unknown>[], true)
      },
      read: (postIds) => this.getByPostIds(postIds),
      offLoop: () => this.searchReader() !== null,
      counts: (scope) => this.counts(scope),
      limits: options.searchLimits ?? SEARCH_LIMITS,
    }
  }

  // ------------------------------------------------------------------------------------------
  // The engine

  private run<T>(work: (db: Db) => T, touchesIndex = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'sync', run: work, resolve: resolve as (value: unknown) => void, reject, touchesIndex })
      this.schedule()
    })
  }

  /**
   * Work that holds the connection and one transaction across `await`s (a large insert yields the
   * loop between chunks and stays atomic); queued work waits for it.
   */
  private exclusive<T>(work: (db: Db, yieldLoop: () => Promise<void>) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'async', run: work, resolve: resolve as (value: unknown) => void, reject })
      this.schedule()
    })
  }

  private schedule() {
    if (this.flushing || this.queue.length === 0) return
    this.flushing = true
    setImmediate(() => void this.flush())
  }

  private async flush() {
    let db: Db | undefined
    try {
      db = (await this.knex.client.acquireConnection()) as Db
      if (this.queue[0]?.kind === 'async') await this.runExclusive(db, this.queue.shift() as Extract<Work, { kind: 'async' }>)
      else this.runBatch(db)
    } catch (error) {
      // No connection (the file was removed, the pool closed): everything waiting fails.
      for (const work of this.queue.splice(0)) work.reject(error)
    } finally {
      if (db) await this.knex.client.releaseConnection(db)
      this.flushing = false
      this.schedule()
    }
  }

  /** Sync work of this turn in one transaction, each piece in a savepoint; resolved after COMMIT. */
  private runBatch(db: Db) {
    const started = performance.now()
    const done: { work: Work; value: unknown }[] = []
    const failed: { work: Work; error: unknown }[] = []
    db.exec('BEGIN IMMEDIATE')
    try {
      while (this.queue[0]?.kind === 'sync' && (done.length === 0 || performance.now() - started < SLICE_MS)) {
        const work = this.queue.shift() as Extract<Work, { kind: 'sync' }>
        if (work.touchesIndex) this.flushIndex(db)
        const mark = this.pendingIndex.mark()
        try {
          done.push({ work, value: db.transaction(() => work.run(db))() })
        } catch (error) {
          this.pendingIndex.rollbackTo(mark)
          failed.push({ work, error })
        }
      }
      this.flushIndex(db)
      db.exec('COMMIT')
    } catch (error) {
      this.pendingIndex.clear()
      if (db.inTransaction) db.exec('ROLLBACK')
      for (const { work } of [...done, ...failed]) work.reject(error)
      return
    }
    for (const { work, value } of done) work.resolve(value)
    for (const { work, error } of failed) work.reject(error)
  }

  private async runExclusive(db: Db, work: Extract<Work, { kind: 'async' }>) {
    db.exec('BEGIN IMMEDIATE')
    try {
      const value = await work.run(db, () => new Promise((resolve) => setImmediate(resolve)))
      this.flushIndex(db)
      db.exec('COMMIT')
      work.resolve(value)
    } catch (error) {
      this.pendingIndex.clear()
      if (db.inTransaction) db.exec('ROLLBACK')
      work.reject(error)
    }
  }

  /** Writes the held index rows of the open transaction (outside any savepoint). */
  private flushIndex(db: Db) {
    this.pendingIndex.flush((sql) => this.statement(db, sql))
  }

  /** Resolves when nothing is queued or under way. */
  private async idle(): Promise<void> {
    while (this.flushing || this.queue.length) await new Promise((resolve) => setImmediate(resolve))
  }

  private statement(db: Db, sql: string): Statement {
    let cache = statementCaches.get(db)
    if (!cache) statementCaches.set(db, (cache = new Map()))
    let statement = cache.get(sql)
    if (!statement) cache.set(sql, (statement = db.prepare(sql)))
    const trace = this.trace
    if (!trace) return statement
    const traced = statement
    return {
      reader: traced.reader,
      run: (...params: unknown[]) => (trace(sql, params), traced.run(...params)),
      get: (...params: unknown[]) => (trace(sql, params), traced.get(...params)),
      all: (...params: unknown[]) => (trace(sql, params), traced.all(...params)),
    }
  }

  // ------------------------------------------------------------------------------------------
  // Reads

  private readJobs(db: Db, postIds: readonly number[]): StoredJob[] {
    if (postIds.length === 0) return []
    const ids = JSON.stringify(postIds)
    const rows = this.statement(
      db,
      `SELECT p.slug AS slug, p.title AS title, j.* FROM job_state j JOIN posts p ON p.id = j.post_id
       WHERE j.post_id IN (SELECT value FROM json_each(?))`,
    ).all(ids) as Record<string, unknown>[]
    const metaRows = this.statement(
      db,
      `SELECT post_id, meta_key, meta_value FROM post_meta WHERE post_id IN (SELECT value FROM json_each(?))`,
    ).all(ids) as { post_id: number; meta_key: string; meta_value: string | null }[]
    const meta = new Map<number, Record<string, string>>()
    for (const row of metaRows) {
      if (row.meta_value == null) continue
      let entry = meta.get(row.post_id)
      if (!entry) meta.set(row.post_id, (entry = {}))
      entry[row.meta_key] = row.meta_value
    }
    const byId = new Map<number, StoredJob>()
    for (const row of rows) {
      const state = stateFromRow(row)
      byId.set(state.postId, assemble(state, { slug: String(row.slug), title: String(row.title) }, meta.get(state.postId) ?? {}))
    }
    return postIds.flatMap((id) => byId.get(id) ?? [])
  }

  getByJobId(jobId: string): Promise<StoredJob | null> {
    return this.run((db) => {
      const row = this.statement(db, `SELECT id FROM posts WHERE post_type_slug = 'jobs' AND slug = ?`).get(jobId) as { id: number } | undefined
      return row ? (this.readJobs(db, [row.id])[0] ?? null) : null
    })
  }

  getByJobIds(jobIds: readonly string[]): Promise<StoredJob[]> {
    if (jobIds.length === 0) return Promise.resolve([])
    return this.run((db) => {
      const ids = (
        this.statement(db, `SELECT id FROM posts WHERE post_type_slug = 'jobs' AND slug IN (SELECT value FROM json_each(?))`).all(JSON.stringify(jobIds)) as { id: number }[]
      ).map((row) => row.id)
      return this.readJobs(db, ids)
    })
  }

  getByPostIds(postIds: readonly number[]): Promise<StoredJob[]> {
    return this.run((db) => this.readJobs(db, postIds))
  }

  /** A search's statements, each in its own turn of the queue (search/sqliteSearch.ts). */
  private readonly searchIo: SqliteSearchIo
  private reader: SqliteSearchReader | null | undefined

  /** A file database's searches run on a reader in a worker thread (search/sqliteReader.ts). */
  private searchReader(): SqliteSearchReader | null {
    if (this.reader === undefined) {
      const filename = (this.knex.client.config as { connection?: { filename?: string } }).connection?.filename
      this.reader = filename && filename !== ':memory:' && !filename.startsWith('file:') ? new SqliteSearchReader(filename) : null
    }
    return this.reader?.usable ? this.reader : null
  }

  list(query: JobListQuery): Promise<JobListPage> {
    const terms = searchTerms(query)
    if (terms) return sqliteSearchList(query, terms, this.searchIo)
    const { sql, values } = listSql(query)
    return this.run((db) => {
      const ids = (this.statement(db, sql).all(...values) as { post_id: number }[]).map((row) => row.post_id)
      return { jobs: this.readJobs(db, ids), total: null }
    })
  }

  count(query: Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>, cap: number): Promise<CountResult> {
    const terms = searchTerms(query)
    if (terms) return sqliteSearchCount(query, terms, cap, this.searchIo)
    const { sql, values } = countSql(query, cap)
    return this.run((db) => ({ n: Number((this.statement(db, sql).get(...values) as { n: number }).n), complete: true }))
  }

  counts(scope: string): Promise<CountRow[]> {
    return this.run(
      (db) => this.statement(db, `SELECT type, status, n FROM job_counts WHERE owner = ? AND n <> 0`).all(scope) as CountRow[],
    )
  }

  minutes(scope: string, since: number): Promise<MinuteRow[]> {
    return this.run((db) =>
      (
        this.statement(
          db,
          `SELECT minute, created, completed, failed, finished, duration_ms FROM job_minute_counts WHERE owner = ? AND minute >= ? ORDER BY minute`,
        ).all(scope, since) as Record<string, number>[]
      ).map((row) => ({
        minute: row.minute!,
        created: row.created!,
        completed: row.completed!,
        failed: row.failed!,
        finished: row.finished!,
        durationMs: row.duration_ms!,
      })),
    )
  }

  // ------------------------------------------------------------------------------------------
  // Writes

  private insertRows(db: Db, jobs: readonly NewJob[]): number[] {
    const post = this.statement(
      db,
      `INSERT INTO posts (post_type_slug, title, slug, status, created_at, updated_at) VALUES ('jobs', ?, ?, 'publish', ?, ?)`,
    )
    const state = this.statement(
      db,
      `INSERT INTO job_state (post_id, ${INSERT_COLUMNS.map((key) => STATE_COLUMNS[key]).join(', ')}) VALUES (?${', ?'.repeat(INSERT_COLUMNS.length)})`,
    )
    const meta = this.statement(db, `INSERT INTO post_meta (post_id, meta_key, meta_value) VALUES (?, ?, ?)`)
    return jobs.map((job) => {
      const created = new Date(job.state.createdAt).toISOString()
      const postId = Number(post.run(job.name, job.jobId, created, created).lastInsertRowid)
      state.run(postId, ...insertValues(job))
      for (const [key, value] of Object.entries(job.meta)) meta.run(postId, key, value)
      this.pendingIndex.insert(postId, job.name, job.meta)
      return postId
    })
  }

  insert(jobs: NewJob[]): Promise<number[]> {
    if (jobs.length <= INSERT_CHUNK) return this.run((db) => this.insertRows(db, jobs))
    return this.exclusive(async (db, yieldLoop) => {
      const ids: number[] = []
      for (let i = 0; i < jobs.length; i += INSERT_CHUNK) {
        if (i > 0) await yieldLoop()
        ids.push(...this.insertRows(db, jobs.slice(i, i + INSERT_CHUNK)))
        this.flushIndex(db)
      }
      return ids
    })
  }

  private writeMeta(db: Db, postId: number, meta: MetaPatch | undefined) {
    if (!meta) return
    for (const [key, value] of Object.entries(meta)) {
      if (value === null) this.statement(db, `DELETE FROM post_meta WHERE post_id = ? AND meta_key = ?`).run(postId, key)
      else
        this.statement(
          db,
          `INSERT INTO post_meta (post_id, meta_key, meta_value) VALUES (?, ?, ?) ON CONFLICT (post_id, meta_key) DO UPDATE SET meta_value = excluded.meta_value`,
        ).run(postId, key, value)
    }
  }

  private changeRow(db: Db, change: JobChange, now: number): JobState | null {
    const patch = patchSql({ updatedAt: now, ...change.set })
    const where = [`post_id = ?`, `status IN (SELECT value FROM json_each(?))`]
    const values: unknown[] = [...patch.values, change.postId, JSON.stringify(change.from)]
    if (change.token !== undefined) where.push('attempt_token = ?'), values.push(change.token)
    if (change.lockedBefore !== undefined) where.push('locked_until < ?'), values.push(change.lockedBefore)
    const fence = metaFenceSql(change.metaEquals)
    where.push(...fence.sql), values.push(...fence.values)
    const row = this.statement(db, `UPDATE job_state SET ${patch.sql} WHERE ${where.join(' AND ')} RETURNING *`).get(...values) as
      | Record<string, unknown>
      | undefined
    if (!row) return null
    this.writeMeta(db, change.postId, change.meta)
    if (touchesSearch(change.meta)) this.pendingIndex.change(change.postId)
    return stateFromRow(row)
  }

  change(change: JobChange, now: number): Promise<JobState | null> {
    return this.run((db) => this.changeRow(db, change, now))
  }

  changeAndInsert(change: JobChange, jobs: NewJob[], now: number): Promise<{ state: JobState; postIds: number[] } | null> {
    // One savepoint: the inserts happen only after the change held, and fail it if they fail.
    return this.run((db) => {
      const state = this.changeRow(db, change, now)
      return state ? { state, postIds: this.insertRows(db, jobs) } : null
    })
  }

  complete(completions: JobCompletion[]): Promise<(JobState | null)[]> {
    return this.run((db) =>
      completions.map((completion) =>
        this.changeRow(
          db,
          {
            postId: completion.postId,
            // Only the running attempt holding the token settles (see README, "Job lifecycle").
            from: ['running'],
            token: completion.token,
            set: {
              status: completion.status,
              progress: 100,
              completedAt: completion.now,
              attemptToken: null,
              lockedUntil: null,
              pausedFrom: null,
            },
            meta: {
              ...(completion.result !== null ? { result: completion.result } : {}),
              ...(completion.clearError ? { error_message: null } : {}),
            },
          },
          completion.now,
        ),
      ),
    )
  }

  claim(request: ClaimRequest): Promise<StoredJob[]> {
    const slots = request.slots.filter(([, n]) => n > 0)
    if (slots.length === 0 || request.limit <= 0) return Promise.resolve([])
    // Per type an ordered walk of the claim index (due jobs of that type only), merged by priority.
    // INDEXED BY: without statistics SQLite might prefer a status index and sort (or fail loudly).
    const pick = `${slots
      .map(
        (_, index) =>
          `SELECT * FROM (SELECT post_id, priority, run_at FROM job_state INDEXED BY job_state_claim_idx WHERE type = ? AND status = 'pending' AND queued = 1 AND delayed = 0 AND run_at <= ? ORDER BY ${queueOrderSql()} LIMIT ?) AS t${index}`,
      )
      .join(' UNION ALL ')} ORDER BY ${queueOrderSql()} LIMIT ?`
    const pickValues = [...slots.flatMap(([type, n]) => [type, request.now, n]), request.limit]
    return this.run((db) => {
      const ids = (this.statement(db, pick).all(...pickValues) as { post_id: number }[]).map((row) => row.post_id)
      if (ids.length === 0) return []
      // By post id (`+status`: no index on status may drive it, or it would walk every pending job).
      this.statement(
        db,
        `UPDATE job_state SET status = 'running', attempts = attempts + 1, attempt_token = lower(hex(randomblob(16))),
           locked_until = ?, started_at = COALESCE(started_at, ?), updated_at = ?, paused_from = NULL
         WHERE post_id IN (SELECT value FROM json_each(?)) AND +status = 'pending'`,
      ).run(request.now + request.leaseMs, request.now, request.now, JSON.stringify(ids))
      return this.readJobs(db, ids)
    })
  }

  promoteDue(now: number): Promise<{ promoted: number; nextDueAt: number | null }> {
    return this.run((db) => {
      const promoted = this.statement(
        db,
        `UPDATE job_state SET delayed = 0 WHERE post_id IN (
           SELECT post_id FROM job_state INDEXED BY job_state_delayed_idx WHERE status = 'pending' AND delayed = 1 AND run_at <= ? ORDER BY run_at LIMIT 5000)`,
      ).run(now).changes
      const next = this.statement(db, `SELECT MIN(run_at) AS next FROM job_state INDEXED BY job_state_delayed_idx WHERE status = 'pending' AND delayed = 1 AND run_at > ?`).get(now) as { next: number | null }
      return { promoted, nextDueAt: next.next ?? null }
    })
  }

  renewLeases(tokens: readonly string[], until: number, now: number): Promise<number[]> {
    if (tokens.length === 0) return Promise.resolve([])
    return this.run((db) =>
      (
        this.statement(
          db,
          `UPDATE job_state SET locked_until = ?, updated_at = ? WHERE attempt_token IN (SELECT value FROM json_each(?)) AND +status = 'running' RETURNING post_id`,
        ).all(until, now, JSON.stringify(tokens)) as { post_id: number }[]
      ).map((row) => row.post_id),
    )
  }

  expiredLeases(now: number, limit: number): Promise<StoredJob[]> {
    return this.run((db) => {
      const ids = (
        this.statement(db, `SELECT post_id FROM job_state WHERE locked_until < ? ORDER BY locked_until LIMIT ?`).all(now, limit) as { post_id: number }[]
      ).map((row) => row.post_id)
      return this.readJobs(db, ids)
    })
  }

  deleteIf(postId: number, statuses: readonly JobStatus[]): Promise<boolean> {
    return this.run(
      (db) =>
        this.statement(
          db,
          `DELETE FROM posts WHERE id = ? AND EXISTS (SELECT 1 FROM job_state WHERE post_id = ? AND status IN (SELECT value FROM json_each(?)))`,
        ).run(postId, postId, JSON.stringify(statuses)).changes === 1,
      true,
    )
  }

  /**
   * Deletes in chunks sized to take a few ms each (a job's post, typed row, meta and index
   * entries are ~20 B-tree deletions, and a database under load is slower): the loop is never
   * held for more than one small chunk.
   */
  async deleteFinishedBefore(cutoff: number, limit: number): Promise<number> {
    let deleted = 0
    while (deleted < limit) {
      const want = Math.min(this.deleteChunk, limit - deleted)
      const { n, ms } = await this.run((db) => {
        const started = performance.now()
        let n = 0
        for (const status of FINAL_STATUSES_LIST) {
          if (n >= want) break
          n += this.statement(
            db,
            `DELETE FROM posts WHERE id IN (
               SELECT post_id FROM job_state WHERE status = ? AND completed_at > 0 AND completed_at < ? ORDER BY completed_at LIMIT ?)`,
          ).run(status, cutoff, want - n).changes
        }
        return { n, ms: performance.now() - started }
      }, true)
      deleted += n
      if (n < want) break
      if (ms < DELETE_SLICE_MS / 3) this.deleteChunk = Math.min(MAX_DELETE_CHUNK, this.deleteChunk * 2)
      else if (ms > DELETE_SLICE_MS) this.deleteChunk = Math.max(10, Math.floor(this.deleteChunk / 2))
    }
    return deleted
  }

  listQueue(query: QueueQuery): Promise<{ jobs: StoredJob[]; total: number }> {
    const { sql, values, countSql: count, countValues } = queueSql(query, { namedIndex: true })
    return this.run((db) => {
      const ids = (this.statement(db, sql).all(...values) as { post_id: number }[]).map((row) => row.post_id)
      const total = Number((this.statement(db, count).get(...countValues) as { n: number }).n)
      return { jobs: this.readJobs(db, ids), total }
    })
  }

  /** In one savepoint: a job that is no longer movable rolls back the ones moved before it. */
  async reorder(request: ReorderRequest): Promise<ReorderOutcome> {
    try {
      return await this.run((db) => {
        const update = this.statement(
          db,
          `UPDATE job_state SET priority = ?, run_at = ?, delayed = 0, updated_at = ? WHERE post_id = ? AND ${REORDER_FENCE} RETURNING *`,
        )
        const states = request.postIds.map((postId, i) => {
          const row = update.get(request.priority, request.runAts[i], request.now, postId, request.now) as Record<string, unknown> | undefined
          if (!row) throw new ReorderRefused(postId)
          return stateFromRow(row)
        })
        return { ok: true as const, states }
      })
    } catch (error) {
      if (error instanceof ReorderRefused) return { ok: false, postId: error.postId }
      throw error
    }
  }

  /** Housekeeping: a bounded step of merging the search index's segments (search/sqliteIndex.ts). */
  maintain(): Promise<void> {
    return this.run((db) => void maintainSearchIndex((sql) => this.statement(db, sql)))
  }

  async close(): Promise<void> {
    await this.idle()
    await this.reader?.close()
  }
}

/** Thrown inside a reorder's savepoint to roll it back. */
class ReorderRefused extends Error {
  constructor(readonly postId: number) {
    super(`Job ${postId} cannot be reordered.`)
  }
}
