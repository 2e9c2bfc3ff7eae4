import { isSearchMetaKey, searchDocument, SEARCH_META_KEYS } from './document.js'

/**
 * Writes of the SQLite search index, called by SqliteJobStore inside the transaction that
 * writes the job (so a job and its index row commit or roll back together). A job's row is
 * deleted with its post by a trigger (migrations/008_job_search.ts), whoever deletes it.
 */

interface Prepared {
  run(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
}
type Prepare = (sql: string) => Prepared

/** The index row of a job just inserted. */
export function indexInsertedJob(prepare: Prepare, postId: number, name: string, meta: Readonly<Record<string, string>>): void {
  const document = searchDocument(name, meta)
  prepare('INSERT INTO job_search (rowid, body, kv) VALUES (?, ?, ?)').run(postId, document.body, document.kv)
}

/** Whether a meta write changes what the index holds of a job. */
export function touchesSearch(meta: Readonly<Record<string, unknown>> | undefined): boolean {
  return meta !== undefined && Object.keys(meta).some(isSearchMetaKey)
}

/** The index row of a job rebuilt from its stored name and meta (after a change of them). */
export function reindexJob(prepare: Prepare, postId: number): void {
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
