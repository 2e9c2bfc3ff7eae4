import { isSearchMetaKey, SEARCH_META_KEYS, sqliteSearchRow, type SearchDocument } from './document.js'

/**
 * Writes of the SQLite search index, made by SqliteJobStore in the transaction that writes the
 * job (so a job and its index row commit or roll back together). A job's index row is in the
 * FTS5 table `job_search` or, written by a small transaction, in `job_search_pending` until it
 * moves there (migrations/012_job_search_pending.ts); searches read both (sqliteSearch.ts). The
 * post delete trigger deletes both, whoever deletes the job.
 */

interface Prepared {
  run(...params: unknown[]): unknown
  get(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
}
type Prepare = (sql: string) => Prepared

/**
 * A transaction with at least this many index rows writes them to FTS5 itself: FTS5 writes a
 * segment per COMMIT (~100 µs measured for one job's row), which many rows share.
 */
export const DIRECT_ROWS = 64
/** Pending rows past this are moved into FTS5 by the transaction that adds them (≈ 5 ms). */
export const PENDING_LIMIT = 500

/**
 * The index writes of one transaction, held until its pieces are done and then written together
 * just before COMMIT (`flush`). Why: the job store runs each piece of a group commit in a SAVEPOINT,
 * and FTS5 writes its pending terms to disk at every savepoint, so an index row written inside a
 * piece became a segment of its own (measured: 3× the cost of the same rows written in a run).
 * A piece that fails drops its writes (`rollbackTo`), as its savepoint drops its rows.
 */
export class PendingSearchIndex {
  private inserted: { postId: number; name: string; meta: Readonly<Record<string, string>> }[] = []
  private changed: number[] = []

  get empty(): boolean {
    return this.inserted.length === 0 && this.changed.length === 0
  }

  /** A job just inserted (its row is built at the flush). */
  insert(postId: number, name: string, meta: Readonly<Record<string, string>>): void {
    this.inserted.push({ postId, name, meta })
  }

  /** A job whose searchable meta changed (rebuilt from its stored rows at the flush). */
  change(postId: number): void {
    this.changed.push(postId)
  }

  mark(): { inserted: number; changed: number } {
    return { inserted: this.inserted.length, changed: this.changed.length }
  }

  rollbackTo(mark: { inserted: number; changed: number }): void {
    this.inserted.length = mark.inserted
    this.changed.length = mark.changed
  }

  clear(): void {
    this.inserted = []
    this.changed = []
  }

  /**
   * Writes the held rows, outside any savepoint: to FTS5 when there are DIRECT_ROWS of them (and
   * the pending rows go with them), else to the pending list (moved when it passes PENDING_LIMIT).
   * A job changed after its insert is built once, from its stored rows. The store flushes before
   * any piece that deletes jobs (the delete trigger then finds their rows), so every held job
   * still exists here.
   */
  flush(prepare: Prepare): void {
    if (this.empty) return
    const inserted = this.inserted
    const changed = new Set(this.changed)
    this.clear()
    const rows: IndexRow[] = []
    for (const job of inserted) {
      if (!changed.has(job.postId)) rows.push({ postId: job.postId, replaces: false, ...sqliteSearchRow(job.name, job.meta) })
    }
    const insertedHere = new Set(inserted.map((job) => job.postId))
    for (const postId of changed) {
      const row = storedRow(prepare, postId, !insertedHere.has(postId))
      if (row) rows.push(row)
    }
    if (rows.length >= DIRECT_ROWS) {
      movePendingRows(prepare)
      writeToIndex(prepare, rows)
      return
    }
    // A job already pending keeps its `replaces` (whether FTS5 holds an older row of it).
    const pending = prepare(
      `INSERT INTO job_search_pending (post_id, body, kv, replaces) VALUES (?, ?, ?, ?)
       ON CONFLICT (post_id) DO UPDATE SET body = excluded.body, kv = excluded.kv`,
    )
    for (const row of rows) pending.run(row.postId, row.body, row.kv, row.replaces ? 1 : 0)
    const { n } = prepare(`SELECT COUNT(*) AS n FROM job_search_pending`).get() as { n: number }
    if (n > PENDING_LIMIT) movePendingRows(prepare)
  }
}

interface IndexRow extends SearchDocument {
  postId: number
  /** FTS5 may hold an older row of the job (deleted first). */
  replaces: boolean
}

/** Whether a meta write changes what the index holds of a job. */
export function touchesSearch(meta: Readonly<Record<string, unknown>> | undefined): boolean {
  return meta !== undefined && Object.keys(meta).some(isSearchMetaKey)
}

/** The index row of a job from its stored name and meta (after a change of them); null if it is gone. */
function storedRow(prepare: Prepare, postId: number, replaces: boolean): IndexRow | null {
  const rows = prepare(
    `SELECT p.title AS title, m.meta_key AS k, m.meta_value AS v FROM posts p
     LEFT JOIN post_meta m ON m.post_id = p.id AND m.meta_key IN (${SEARCH_META_KEYS.map((key) => `'${key}'`).join(', ')})
     WHERE p.id = ?`,
  ).all(postId) as { title: string; k: string | null; v: string | null }[]
  if (rows.length === 0) return null
  const meta: Record<string, string> = {}
  for (const row of rows) if (row.k !== null && row.v !== null) meta[row.k] = row.v
  return { postId, replaces, ...sqliteSearchRow(rows[0]!.title, meta) }
}

function writeToIndex(prepare: Prepare, rows: readonly IndexRow[]): void {
  // VALUES, not INSERT … SELECT: FTS5 takes the latter at over twice the cost per row.
  const insert = prepare('INSERT INTO job_search (rowid, body, kv) VALUES (?, ?, ?)')
  const remove = prepare('DELETE FROM job_search WHERE rowid = ?')
  for (const row of rows) {
    if (row.replaces) remove.run(row.postId)
    insert.run(row.postId, row.body, row.kv)
  }
}

/** Moves every pending row into FTS5 (one segment for all of them). */
export function movePendingRows(prepare: Prepare): number {
  const pending = prepare(`SELECT post_id AS postId, body, kv, replaces FROM job_search_pending ORDER BY post_id`).all() as (SearchDocument & {
    postId: number
    replaces: number
  })[]
  if (pending.length === 0) return 0
  writeToIndex(
    prepare,
    pending.map((row) => ({ ...row, replaces: row.replaces === 1 })),
  )
  prepare(`DELETE FROM job_search_pending`).run()
  return pending.length
}

/** Pages of segment merging per maintenance call (each call holds the loop a few ms at most). */
export const MERGE_PAGES = 64

/**
 * The index's upkeep, called by the store's `maintain()` every second: the pending rows move
 * into FTS5 (so an idle index has none), then one bounded step of merging segments. Writes leave
 * merging to this (automerge is off: a create does not pay for merging); FTS5's crisis merge
 * still bounds the segments if maintenance falls behind.
 */
export function maintainSearchIndex(prepare: Prepare): void {
  movePendingRows(prepare)
  prepare(`INSERT INTO job_search (job_search, rank) VALUES ('merge', ${MERGE_PAGES})`).run()
}
