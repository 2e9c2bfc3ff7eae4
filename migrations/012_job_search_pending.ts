import type { Knex } from 'knex'

/**
 * SQLite: the search index's pending list (as PostgreSQL's GIN `fastupdate` has one). FTS5
 * writes a segment at every COMMIT that touched it, ~100 µs for one job's row whatever its size,
 * so a create in a transaction of its own paid more for its index row than for everything else
 * (measured: hooks.createJob 25 % slower with the index). A small transaction now writes its
 * jobs' index rows here (one plain row each, in the same transaction as the job); a large one
 * writes them to FTS5 directly, and moves the pending rows with them when there are many; the
 * store's maintain() moves the rest every second. Searches read both (search/sqliteIndex.ts).
 *
 * `body` and `kv` hold the row exactly as it goes into FTS5, distinct words and tokens between
 * single spaces with a space at each end, so that a word prefix is `instr(body, ' ' || word)`.
 * `replaces`: the job may have an older row in FTS5 (a change), deleted there when this moves.
 * The post delete trigger now deletes the pending row too. PostgreSQL: nothing (GIN has its own).
 */
export async function up(knex: Knex): Promise<void> {
  if (!isSqlite(knex)) return
  await knex.raw(`
    CREATE TABLE job_search_pending (
      post_id INTEGER PRIMARY KEY,
      body TEXT NOT NULL,
      kv TEXT NOT NULL,
      replaces INTEGER NOT NULL DEFAULT 0
    )`)
  await knex.raw('DROP TRIGGER IF EXISTS job_search_post_delete')
  await knex.raw(`
    CREATE TRIGGER job_search_post_delete AFTER DELETE ON posts WHEN OLD.post_type_slug = 'jobs' BEGIN
      DELETE FROM job_search WHERE rowid = OLD.id;
      DELETE FROM job_search_pending WHERE post_id = OLD.id;
    END`)
}

export async function down(knex: Knex): Promise<void> {
  if (!isSqlite(knex)) return
  // Pending rows go into FTS5 first: nothing indexed is lost.
  const rows = (await knex.raw('SELECT post_id, body, kv, replaces FROM job_search_pending')) as { post_id: number; body: string; kv: string; replaces: number }[]
  for (const row of rows) {
    if (row.replaces) await knex.raw('DELETE FROM job_search WHERE rowid = ?', [row.post_id])
    await knex.raw('INSERT INTO job_search (rowid, body, kv) VALUES (?, ?, ?)', [row.post_id, row.body, row.kv])
  }
  await knex.raw('DROP TRIGGER IF EXISTS job_search_post_delete')
  await knex.raw(`
    CREATE TRIGGER job_search_post_delete AFTER DELETE ON posts WHEN OLD.post_type_slug = 'jobs' BEGIN
      DELETE FROM job_search WHERE rowid = OLD.id;
    END`)
  await knex.raw('DROP TABLE IF EXISTS job_search_pending')
}

function isSqlite(knex: Knex): boolean {
  return String(knex.client.dialect).startsWith('sqlite')
}
