import { createRequire } from 'node:module'
import { createDatabase } from '../core/db/createDatabase.js'
import { migrateLatest } from '../migrations/index.js'
import type { NewPost } from '../core/store/PostStore.js'

// No type declarations are installed for better-sqlite3; its API is used directly and simply here.
const Database: new (file: string) => any = createRequire(import.meta.url)('better-sqlite3')

/**
 * The floor: the same post + meta rows written with raw better-sqlite3 prepared statements, on a
 * file with Jobpost's schema and pragmas, without knex or any Jobpost code in the way.
 */
export async function rawSqliteInserts(options: { file: string; single: NewPost[]; bulk: NewPost[]; bulkChunk: number }) {
  const setup = createDatabase({ dialect: 'sqlite', filename: options.file })
  await migrateLatest(setup.knex)
  await setup.close()
  const db = new Database(options.file)
  db.pragma('busy_timeout = 5000')
  db.pragma('journal_mode = WAL')
  db.pragma('foreign_keys = ON')
  db.pragma('synchronous = NORMAL')
  const insertPost = db.prepare(
    'INSERT INTO posts (post_type_slug, title, slug, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
  )
  const insertMeta = db.prepare('INSERT INTO post_meta (post_id, meta_key, meta_value) VALUES (?, ?, ?)')
  const write = (post: NewPost) => {
    const { lastInsertRowid } = insertPost.run(post.postType, post.title, post.slug, 'publish', post.createdAt, post.createdAt)
    for (const [key, value] of Object.entries(post.meta)) insertMeta.run(lastInsertRowid, key, value)
  }
  const one = db.transaction((post: NewPost) => write(post))
  const many = db.transaction((posts: NewPost[]) => posts.forEach(write))

  let start = performance.now()
  for (const post of options.single) one.immediate(post)
  const singlePerSec = options.single.length / ((performance.now() - start) / 1000)
  start = performance.now()
  for (let i = 0; i < options.bulk.length; i += options.bulkChunk) many.immediate(options.bulk.slice(i, i + options.bulkChunk))
  const bulkPerSec = options.bulk.length / ((performance.now() - start) / 1000)
  db.close()
  return { singlePerSec, bulkPerSec }
}
