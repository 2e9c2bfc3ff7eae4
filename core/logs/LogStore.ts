import type { Knex } from 'knex'
import type { AttemptOutcome, JobAttempt, JobLogLine, LogLevel } from '../contract.js'
import { LOG_LINE_CAP, type PendingLine } from './logLine.js'

/** Rows per INSERT statement (one JSON parameter each). */
const INSERT_CHUNK = 1000

interface SeqRow {
  post_id: number | string
  last_seq: number | string
}

/** The parts of a better-sqlite3 connection used here (the raw connection of knex's pool). */
interface SqliteStatement {
  run(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
}
interface SqliteConnection {
  prepare(sql: string): SqliteStatement
  transaction<T>(fn: () => T): { immediate(): T }
}
const statementCaches = new WeakMap<SqliteConnection, Map<string, SqliteStatement>>()

export interface FlushResult {
  /** Per job id, the lines as written (with their seq), oldest first. */
  written: Map<string, JobLogLine[]>
  /** Jobs whose lines or attempts were dropped because the job is gone. */
  gone: Set<number>
}

/** A run that started: its row is inserted `running`. */
export interface AttemptStart {
  postId: number
  token: string
  attempt: number
  instance: string | null
  startedAt: number
}

/** How a run ended: its row is updated only while still `running`. */
export interface AttemptFinish {
  postId: number
  token: string
  outcome: AttemptOutcome
  finishedAt: number
  error: string | null
}

/** What one flush writes, in one transaction. */
export interface LogBatch {
  lines: PendingLine[]
  /** Per post id, lines dropped before they were written. */
  unwritten: Map<number, number>
  starts: AttemptStart[]
  finishes: AttemptFinish[]
  /** Jobs whose written lines are wanted back (live subscribers); default all. */
  wanted?: (jobId: string) => boolean
  /** A NOTIFY payload sent at commit (PostgreSQL), from the last seq per job id. */
  notify?: (lastSeqs: Map<string, number>) => { channel: string; payloads: string[] } | null
}

/**
 * The SQL of job logs and attempts (migration 007), for both dialects through knex. A flush is one
 * transaction: one UPSERT hands each job a block of seqs (`job_log_state`, whose row lock orders
 * concurrent writers of one job), one INSERT per 1,000 lines, one DELETE for the lines past the
 * cap, one INSERT of the attempts that started and one UPDATE of those that ended and, on
 * PostgreSQL, one NOTIFY so that other instances read the new lines after COMMIT.
 */
export class LogStore {
  readonly dialect: 'sqlite' | 'postgres'

  constructor(private readonly knex: Knex) {
    this.dialect = String(knex.client.dialect).startsWith('sqlite') ? 'sqlite' : 'postgres'
  }

  /** Writes a batch; the lines and attempts of a job deleted meanwhile are dropped (see `gone`). */
  async write(batch: LogBatch): Promise<FlushResult> {
    try {
      return await this.writeOnce(batch)
    } catch (error) {
      if (!isForeignKeyViolation(error)) throw error
      // A job was deleted before its lines were written: write the others, drop its lines.
      const postIds = new Set([...batch.lines.map((l) => l.postId), ...batch.unwritten.keys(), ...batch.starts.map((s) => s.postId)])
      const existing = await this.existingPosts([...postIds])
      const gone = new Set([...postIds].filter((id) => !existing.has(id)))
      const kept: LogBatch = {
        ...batch,
        lines: batch.lines.filter((line) => existing.has(line.postId)),
        unwritten: new Map([...batch.unwritten].filter(([postId]) => existing.has(postId))),
        starts: batch.starts.filter((start) => existing.has(start.postId)),
        finishes: batch.finishes.filter((finish) => existing.has(finish.postId)),
      }
      const result = await this.writeOnce(kept)
      for (const postId of gone) result.gone.add(postId)
      return result
    }
  }

  /**
   * SQLite: the whole flush runs synchronously in one `BEGIN IMMEDIATE` on the raw better-sqlite3
   * connection of knex's pool, with statements prepared once (the one connection is held for a
   * few ms, never across an await). PostgreSQL: one knex transaction, a statement per step.
   */
  private async writeOnce(batch: LogBatch): Promise<FlushResult> {
    const byPost = new Map<number, PendingLine[]>()
    for (const line of batch.lines) {
      let list = byPost.get(line.postId)
      if (!list) byPost.set(line.postId, (list = []))
      list.push(line)
    }
    for (const postId of batch.unwritten.keys()) if (!byPost.has(postId)) byPost.set(postId, [])
    const postIds = [...byPost.keys()].sort((a, b) => a - b)
    // A block of seqs per job, in post id order (a fixed lock order between writers).
    const upsert = postIds.length
      ? {
          sql: `INSERT INTO job_log_state (post_id, last_seq, dropped) ${this.rowsFrom(['integer', 'bigint', 'bigint'])}
         ON CONFLICT (post_id) DO UPDATE SET last_seq = job_log_state.last_seq + excluded.last_seq,
           dropped = job_log_state.dropped + excluded.dropped
         RETURNING post_id, last_seq`,
          params: [JSON.stringify(postIds.map((postId) => [postId, byPost.get(postId)!.length, batch.unwritten.get(postId) ?? 0]))],
        }
      : null
    const wanted = batch.wanted ?? (() => true)
    if (this.dialect === 'sqlite') {
      const db = (await this.knex.client.acquireConnection()) as SqliteConnection
      try {
        return db
          .transaction(() => {
            const upserted = upsert ? (this.prepared(db, upsert.sql).all(...upsert.params) as SeqRow[]) : []
            const plan = this.plan(byPost, postIds, upserted, batch, wanted)
            for (const statement of plan.statements) this.prepared(db, statement.sql).run(...statement.params)
            return { written: plan.written, gone: new Set<number>() }
          })
          .immediate()
      } finally {
        await this.knex.client.releaseConnection(db)
      }
    }
    return this.writePostgres(byPost, postIds, batch, wanted)
  }

  /**
   * PostgreSQL: the whole flush is ONE statement (atomic on its own, one round trip): data-modifying
   * CTEs hand out the seq blocks, insert the lines with `seq = last_seq - back` (lines after it in
   * its block), delete the lines past the cap, insert the attempts that started and update those
   * that ended. Then one NOTIFY (after the commit, which is when receivers can read the lines).
   */
  private async writePostgres(
    byPost: Map<number, PendingLine[]>,
    postIds: number[],
    batch: LogBatch,
    wanted: (jobId: string) => boolean,
  ): Promise<FlushResult> {
    const blocks: unknown[][] = []
    const rows: unknown[][] = []
    for (const postId of postIds) {
      const list = byPost.get(postId)!
      blocks.push([postId, list.length, batch.unwritten.get(postId) ?? 0])
      for (let i = Math.max(0, list.length - LOG_LINE_CAP); i < list.length; i++) {
        const line = list[i]!
        rows.push([postId, list.length - 1 - i, line.at, line.level, line.message, line.fields, line.attempt])
      }
    }
    const { starts, finishes } = mergeAttempts(batch.starts, batch.finishes)
    const elements = (_param: number, columns: [string, string][]) =>
      `SELECT ${columns.map(([name, type], i) => `(e->>${i})::${type} AS ${name}`).join(', ')} FROM json_array_elements(?::json) AS e`
    const result = await this.knex.raw(
      `WITH blocks AS (
         INSERT INTO job_log_state (post_id, last_seq, dropped)
         ${elements(1, [['post_id', 'integer'], ['n', 'bigint'], ['dropped', 'bigint']])}
         ON CONFLICT (post_id) DO UPDATE SET last_seq = job_log_state.last_seq + excluded.last_seq,
           dropped = job_log_state.dropped + excluded.dropped
         RETURNING post_id, last_seq
       ), lines AS (
         INSERT INTO job_logs (post_id, seq, at, level, message, fields, attempt)
         SELECT l.post_id, b.last_seq - l.back, l.at, l.level, l.message, l.fields, l.attempt
         FROM (${elements(2, [['post_id', 'integer'], ['back', 'bigint'], ['at', 'bigint'], ['level', 'varchar'], ['message', 'text'], ['fields', 'text'], ['attempt', 'integer']])}) AS l
         JOIN blocks b ON b.post_id = l.post_id
       ), capped AS (
         DELETE FROM job_logs USING blocks b
         WHERE job_logs.post_id = b.post_id AND b.last_seq > ${LOG_LINE_CAP} AND job_logs.seq <= b.last_seq - ${LOG_LINE_CAP}
       ), started AS (
         INSERT INTO job_attempts (post_id, token, attempt, instance, started_at, outcome, finished_at, error)
         ${elements(3, [['post_id', 'integer'], ['token', 'varchar'], ['attempt', 'integer'], ['instance', 'varchar'], ['started_at', 'bigint'], ['outcome', 'varchar'], ['finished_at', 'bigint'], ['error', 'text']])}
       ), ended AS (
         UPDATE job_attempts SET outcome = v.outcome, finished_at = v.finished_at, error = v.error
         FROM (${elements(4, [['post_id', 'integer'], ['token', 'varchar'], ['outcome', 'varchar'], ['finished_at', 'bigint'], ['error', 'text']])}) AS v
         WHERE job_attempts.post_id = v.post_id AND job_attempts.token = v.token AND job_attempts.outcome = 'running'
       )
       SELECT post_id, last_seq FROM blocks`,
      [JSON.stringify(blocks), JSON.stringify(rows), JSON.stringify(starts.map(startRow)), JSON.stringify(finishes.map(finishRow))],
    )
    const lastSeq = new Map(rowsOf<SeqRow>(result).map((row) => [Number(row.post_id), Number(row.last_seq)]))
    const written = new Map<string, JobLogLine[]>()
    const lastSeqs = new Map<string, number>()
    for (const postId of postIds) {
      const list = byPost.get(postId)!
      if (list.length === 0) continue
      const last = lastSeq.get(postId)!
      lastSeqs.set(list[0]!.jobId, last)
      if (!wanted(list[0]!.jobId)) continue
      const first = last - list.length + 1
      const out: JobLogLine[] = []
      for (let i = Math.max(0, list.length - LOG_LINE_CAP); i < list.length; i++) {
        const line = list[i]!
        out.push(toLine({ seq: first + i, at: line.at, level: line.level, message: line.message, fields: line.fields, attempt: line.attempt }))
      }
      written.set(list[0]!.jobId, out)
    }
    // Other instances hear of the new lines now that they are committed.
    const notice = lastSeqs.size ? batch.notify?.(lastSeqs) : null
    if (notice) {
      for (const payload of notice.payloads) {
        await this.knex.raw('SELECT pg_notify(?, ?)', [notice.channel, payload]).catch(() => undefined)
      }
    }
    return { written, gone: new Set<number>() }
  }

  /** The statements of a flush once each job has its block of seqs: lines, cap, attempts. */
  private plan(
    byPost: Map<number, PendingLine[]>,
    postIds: number[],
    upserted: SeqRow[],
    batch: LogBatch,
    wanted: (jobId: string) => boolean,
  ): { statements: { sql: string; params: unknown[] }[]; written: Map<string, JobLogLine[]>; lastSeqs: Map<string, number> } {
    const statements: { sql: string; params: unknown[] }[] = []
    const written = new Map<string, JobLogLine[]>()
    const lastSeqs = new Map<string, number>()
    const lastSeq = new Map(upserted.map((row) => [Number(row.post_id), Number(row.last_seq)]))
    // The lines, with their seqs; a block longer than the cap keeps only its newest lines.
    const rows: unknown[][] = []
    const overCap: [number, number][] = []
    for (const postId of postIds) {
      const list = byPost.get(postId)!
      const last = lastSeq.get(postId)!
      if (list.length === 0) continue
      const first = last - list.length + 1
      const keepFrom = Math.max(0, list.length - LOG_LINE_CAP)
      // Lines as the API gives them only for jobs someone follows live (the fan-out).
      const out: JobLogLine[] | null = wanted(list[0]!.jobId) ? [] : null
      for (let i = keepFrom; i < list.length; i++) {
        const line = list[i]!
        const seq = first + i
        rows.push([postId, seq, line.at, line.level, line.message, line.fields, line.attempt])
        out?.push(toLine({ seq, at: line.at, level: line.level, message: line.message, fields: line.fields, attempt: line.attempt }))
      }
      if (out) written.set(list[0]!.jobId, out)
      lastSeqs.set(list[0]!.jobId, last)
      if (last > LOG_LINE_CAP) overCap.push([postId, last - LOG_LINE_CAP])
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      statements.push({
        sql: `INSERT INTO job_logs (post_id, seq, at, level, message, fields, attempt) ${this.rowsFrom(['integer', 'bigint', 'bigint', 'varchar', 'text', 'text', 'integer'])}`,
        params: [JSON.stringify(rows.slice(i, i + INSERT_CHUNK))],
      })
    }
    // The cap: a job keeps its newest LOG_LINE_CAP lines (seqs are dense, so this is a range).
    if (overCap.length) {
      statements.push({ sql: `DELETE FROM job_logs WHERE ${overCap.map(() => '(post_id = ? AND seq <= ?)').join(' OR ')}`, params: overCap.flat() })
    }
    // Attempts: starts as one INSERT (those that also ended in this batch, ended), ends as one
    // UPDATE ... FROM, per 1,000.
    const { starts, finishes } = mergeAttempts(batch.starts, batch.finishes)
    for (let i = 0; i < starts.length; i += INSERT_CHUNK) {
      const chunk = starts.slice(i, i + INSERT_CHUNK).map(startRow)
      statements.push({
        sql: `INSERT INTO job_attempts (post_id, token, attempt, instance, started_at, outcome, finished_at, error) ${this.rowsFrom(['integer', 'varchar', 'integer', 'varchar', 'bigint', 'varchar', 'bigint', 'text'])}`,
        params: [JSON.stringify(chunk)],
      })
    }
    for (let i = 0; i < finishes.length; i += INSERT_CHUNK) {
      const chunk = finishes.slice(i, i + INSERT_CHUNK).map(finishRow)
      statements.push({
        sql: `UPDATE job_attempts SET outcome = v.c2, finished_at = v.c3, error = v.c4
         FROM (${this.rowsFrom(['integer', 'varchar', 'varchar', 'bigint', 'text'])}) AS v
         WHERE job_attempts.post_id = v.c0 AND job_attempts.token = v.c1 AND job_attempts.outcome = 'running'`,
        params: [JSON.stringify(chunk)],
      })
    }
    return { statements, written, lastSeqs }
  }

  private prepared(db: SqliteConnection, sql: string): SqliteStatement {
    let cache = statementCaches.get(db)
    if (!cache) statementCaches.set(db, (cache = new Map()))
    let statement = cache.get(sql)
    if (!statement) {
      if (cache.size >= 64) cache.delete(cache.keys().next().value!)
      cache.set(sql, (statement = db.prepare(sql)))
    }
    return statement
  }

  /**
   * `SELECT` of many rows from one parameter, a JSON array of arrays: the statement's text never
   * changes with the row count, so it is parsed (and on SQLite prepared) once, and a flush binds
   * one value instead of thousands.
   */
  private rowsFrom(types: string[]): string {
    if (this.dialect === 'sqlite') {
      // `WHERE true`: SQLite's parser needs it before an ON CONFLICT clause after a SELECT.
      return `SELECT ${types.map((_, i) => `value->>${i} AS c${i}`).join(', ')} FROM json_each(?) WHERE true`
    }
    return `SELECT ${types.map((type, i) => `(e->>${i})::${type} AS c${i}`).join(', ')} FROM json_array_elements(?::json) AS e`
  }

  private async existingPosts(postIds: number[]): Promise<Set<number>> {
    if (postIds.length === 0) return new Set()
    const rows = await this.knex('posts').whereIn('id', postIds).select('id')
    return new Set(rows.map((row: { id: number | string }) => Number(row.id)))
  }

  /** Lines after `after`, oldest first. */
  async readLines(postId: number, after: number, limit: number): Promise<JobLogLine[]> {
    const rows = rowsOf<LineRow>(
      await this.knex.raw(
        `SELECT seq, at, level, message, fields, attempt FROM job_logs WHERE post_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
        [postId, after, limit],
      ),
    )
    return rows.map(toLine)
  }

  /** The last seq handed out for a job and how many of its lines were dropped (cap or unwritten). */
  async logState(postId: number): Promise<{ lastSeq: number; dropped: number }> {
    const row = rowsOf<{ last_seq: number | string; dropped: number | string }>(
      await this.knex.raw(`SELECT last_seq, dropped FROM job_log_state WHERE post_id = ?`, [postId]),
    )[0]
    const lastSeq = Number(row?.last_seq ?? 0)
    return { lastSeq, dropped: Number(row?.dropped ?? 0) + Math.max(0, lastSeq - LOG_LINE_CAP) }
  }

  // ------------------------------------------------------------------------------------------
  // Attempts

  /** Ends the open attempts of a job (of one attempt number), only while they are `running`. */
  async finishAttempt(
    target: { postId: number; attempt?: number },
    end: { outcome: AttemptOutcome; finishedAt: number; error: string | null },
  ): Promise<number> {
    const where =
      target.attempt === undefined
          ? { sql: 'post_id = ?', bindings: [target.postId] }
          : { sql: 'post_id = ? AND attempt = ?', bindings: [target.postId, target.attempt] }
    const result = await this.knex.raw(
      `UPDATE job_attempts SET outcome = ?, finished_at = ?, error = ? WHERE ${where.sql} AND outcome = 'running'`,
      [end.outcome, end.finishedAt, end.error, ...where.bindings],
    )
    return changesOf(result)
  }

  async listAttempts(postId: number): Promise<JobAttempt[]> {
    const rows = rowsOf<AttemptRow>(
      await this.knex.raw(
        `SELECT attempt, instance, started_at, finished_at, outcome, error FROM job_attempts WHERE post_id = ? ORDER BY id`,
        [postId],
      ),
    )
    return rows.map((row) => {
      const startedAt = Number(row.started_at)
      const finishedAt = row.finished_at === null ? null : Number(row.finished_at)
      return {
        attempt: Number(row.attempt),
        instance: row.instance,
        startedAt: new Date(startedAt).toISOString(),
        finishedAt: finishedAt === null ? null : new Date(finishedAt).toISOString(),
        durationMs: finishedAt === null ? null : Math.max(0, finishedAt - startedAt),
        outcome: row.outcome as AttemptOutcome,
        error: parseJson(row.error) as JobAttempt['error'],
      }
    })
  }
}

/** An attempt that started and ended within one batch is inserted ended (no UPDATE of its row). */
function mergeAttempts(starts: AttemptStart[], finishes: AttemptFinish[]): { starts: (AttemptStart & Partial<AttemptFinish>)[]; finishes: AttemptFinish[] } {
  if (finishes.length === 0) return { starts, finishes }
  const byToken = new Map<string, AttemptStart & Partial<AttemptFinish>>(starts.map((start) => [start.token, { ...start }]))
  const rest: AttemptFinish[] = []
  for (const finish of finishes) {
    const start = byToken.get(finish.token)
    if (start && start.outcome === undefined) Object.assign(start, { outcome: finish.outcome, finishedAt: finish.finishedAt, error: finish.error })
    else rest.push(finish)
  }
  return { starts: [...byToken.values()], finishes: rest }
}

const startRow = (s: AttemptStart & Partial<AttemptFinish>) => [
  s.postId,
  s.token,
  s.attempt,
  s.instance,
  s.startedAt,
  s.outcome ?? 'running',
  s.finishedAt ?? null,
  s.error ?? null,
]
const finishRow = (f: AttemptFinish) => [f.postId, f.token, f.outcome, f.finishedAt, f.error]

interface LineRow {
  seq: number | string
  at: number | string
  level: string
  message: string
  fields: string | null
  attempt: number | string
}

interface AttemptRow {
  attempt: number | string
  instance: string | null
  started_at: number | string
  finished_at: number | string | null
  outcome: string
  error: string | null
}

function toLine(row: LineRow): JobLogLine {
  return {
    seq: Number(row.seq),
    at: new Date(Number(row.at)).toISOString(),
    level: row.level as LogLevel,
    message: row.message,
    fields: parseJson(row.fields) as Record<string, unknown> | null,
    attempt: Number(row.attempt),
  }
}

function parseJson(text: string | null): unknown {
  if (text === null || text === undefined) return null
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** knex.raw gives an array on SQLite (our client) and `{ rows }` on PostgreSQL. */
function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[]
  return ((result as { rows?: T[] }).rows ?? []) as T[]
}

function changesOf(result: unknown): number {
  const r = result as { rowCount?: number; changes?: number; context?: { changes?: number } } | undefined
  return Number(r?.rowCount ?? r?.changes ?? r?.context?.changes ?? 0)
}

function isForeignKeyViolation(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY'
}
