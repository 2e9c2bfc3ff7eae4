import type { Knex } from 'knex'
import { INDEXED_META_KEYS } from './001_core.js'

/**
 * SQLite: post_meta becomes a WITHOUT ROWID table clustered on (post_id, meta_key), its former
 * unique key. A post's meta rows then sit side by side in one B-tree: reading a job touches one
 * or two pages, and deleting one (cleanup) removes a contiguous range instead of updating a rowid
 * table plus a separate unique index. Measured on 100k jobs: about 1.9× faster inserts and 1.6×
 * faster deletes (docs/PERFORMANCE.md). The surrogate `id` column goes; nothing reads it.
 * PostgreSQL keeps its heap table and (post_id, meta_key) unique index: nothing to change.
 */
export async function up(knex: Knex): Promise<void> {
  if (!isSqlite(knex)) return
  await rebuild(knex, `
    CREATE TABLE post_meta_next (
      post_id integer NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
      meta_key varchar(191) NOT NULL,
      meta_value text NULL,
      PRIMARY KEY (post_id, meta_key)
    ) WITHOUT ROWID`, false)
}

export async function down(knex: Knex): Promise<void> {
  if (!isSqlite(knex)) return
  await rebuild(knex, `
    CREATE TABLE post_meta_next (
      id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
      post_id integer NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
      meta_key varchar(191) NOT NULL,
      meta_value text NULL
    )`, true)
}

function isSqlite(knex: Knex): boolean {
  // 'sqlite3' for knex's SQLite clients (ours extends better-sqlite3's), 'postgresql' for pg.
  return String(knex.client.dialect).startsWith('sqlite')
}

async function rebuild(knex: Knex, createSql: string, uniqueIndex: boolean): Promise<void> {
  await knex.raw(createSql)
  await knex.raw('INSERT INTO post_meta_next (post_id, meta_key, meta_value) SELECT post_id, meta_key, meta_value FROM post_meta')
  await knex.raw('DROP TABLE post_meta')
  await knex.raw('ALTER TABLE post_meta_next RENAME TO post_meta')
  if (uniqueIndex) await knex.raw('CREATE UNIQUE INDEX post_meta_post_key_unique ON post_meta (post_id, meta_key)')
  for (const key of INDEXED_META_KEYS) {
    await knex.raw(`CREATE INDEX post_meta_${key}_idx ON post_meta (meta_value, post_id) WHERE meta_key = '${key}'`)
  }
}
