import { isSearchMetaKey, searchDocument, SEARCH_META_KEYS } from './document.js'

/**
 * Writes of the SQLite search index, made by SqliteJobStore in the transaction that writes the
 * job (so a job and its index row commit or roll back together). A job's row is
 * deleted with its post by a trigger (migrations/008_job_search.ts), whoever deletes it.
 */

interface Prepared {
  run(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
}
type Prepare = (sql: string) => Prepared

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

  /** A job just inserted (its document is built at the flush). */
  insert(postId: number, name: string, meta: Readonly<Record<string, string>>): void {
    this.inserted.push({ postId, name, meta })
  }

  /** A job whose name or searchable meta changed (rebuilt from its stored rows at the flush). */
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
   * Writes the held rows, outside any savepoint. A job changed after its insert is rebuilt from
   * its stored rows once. The store flushes before any piece that deletes jobs (the delete
   * trigger then finds their rows), so every held job still exists here.
   */
  flush(prepare: Prepare): void {
    if (this.empty) return
    const inserted = this.inserted
    const changed = new Set(this.changed)
    this.clear()
    // VALUES, not INSERT … SELECT: FTS5 takes the latter at over twice the cost per row.
    const insert = prepare('INSERT INTO job_search (rowid, body, kv) VALUES (?, ?, ?)')
    for (const job of inserted) {
      if (changed.has(job.postId)) continue
      const document = searchDocument(job.name, job.meta)
      insert.run(job.postId, document.body, document.kv)
    }
    for (const postId of changed) reindexJob(prepare, postId)
  }
}

/** Whether a meta write changes what the index holds of a job. */
export function touchesSearch(meta: Readonly<Record<string, unknown>> | undefined): boolean {
  return meta !== undefined && Object.keys(meta).some(isSearchMetaKey)
}

/** The index row of a job rebuilt from its stored name and meta (after a change of them). */
function reindexJob(prepare: Prepare, postId: number): void {
  const rows = prepare(
    `SELECT p.title AS title, m.meta_key AS k, m.meta_value AS v FROM posts p
     LEFT JOIN post_meta m ON m.post_id = p.id AND m.meta_key IN (${SEARCH_META_KEYS.map((key) => `'${key}'`).join(', ')})
     WHERE p.id = ?`,
  ).all(postId) as { title: string; k: string | null; v: string | null }[]
  prepare('DELETE FROM job_search WHERE rowid = ?').run(postId)
  if (rows.length === 0) return
  const meta: Record<string, string> = {}
  for (const row of rows) if (row.k !== null && row.v !== null) meta[row.k] = row.v
  const document = searchDocument(rows[0]!.title, meta)
  prepare('INSERT INTO job_search (rowid, body, kv) VALUES (?, ?, ?)').run(postId, document.body, document.kv)
}

/** Pages of segment merging per maintenance call (each call holds the loop a few ms at most). */
export const MERGE_PAGES = 64

/**
 * One bounded step of merging the index's segments. Writes leave merging to this (automerge is
 * off: a create does not pay for merging), called by the store's `maintain()` every second;
 * FTS5's crisis merge still bounds the segments if maintenance falls behind.
 */
export function mergeSearchIndex(prepare: Prepare): void {
  prepare(`INSERT INTO job_search (job_search, rank) VALUES ('merge', ${MERGE_PAGES})`).run()
}
