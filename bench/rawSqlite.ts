import { createRequire } from 'node:module'
import type { SystemFigures, Workload } from './lib.js'

// better-sqlite3 has no type declarations installed here; its API is used directly and simply.
const Database: new (file: string) => any = createRequire(import.meta.url)('better-sqlite3')

const META_KEYS = ['job_id', 'name', 'description', 'type', 'status', 'progress', 'metadata', 'priority', 'attempts', 'max_attempts', 'run_at', 'data']

/**
 * The floor for a job stored as a post with meta: 1 post + 12 meta rows per job, written with
 * raw better-sqlite3 prepared statements on a WAL file (synchronous NORMAL), one transaction per
 * step (a create, a claim of up to 10, a completion), with its own minimal schema (no Jobpost
 * code, so it stays the same baseline whatever Jobpost's storage becomes). No latency row: it
 * has no worker loop.
 */
export function rawSqlite(file: string, w: Workload): SystemFigures {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec(`
    CREATE TABLE posts (id INTEGER PRIMARY KEY, post_type TEXT NOT NULL, title TEXT NOT NULL, slug TEXT NOT NULL,
      created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (post_type, slug));
    CREATE TABLE post_meta (post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE, meta_key TEXT NOT NULL,
      meta_value TEXT, PRIMARY KEY (post_id, meta_key)) WITHOUT ROWID;
    CREATE INDEX post_meta_status_idx ON post_meta (meta_value, post_id) WHERE meta_key = 'status';
  `)
  const insertPost = db.prepare('INSERT INTO posts (post_type, title, slug, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
  const insertMeta = db.prepare('INSERT INTO post_meta (post_id, meta_key, meta_value) VALUES (?, ?, ?)')
  const setMeta = db.prepare('INSERT INTO post_meta (post_id, meta_key, meta_value) VALUES (?, ?, ?) ON CONFLICT (post_id, meta_key) DO UPDATE SET meta_value = excluded.meta_value')
  const due = db.prepare("SELECT post_id FROM post_meta WHERE meta_key = 'status' AND meta_value = 'pending' ORDER BY post_id LIMIT ?")
  let serial = 0
  const write = (n: number) => {
    const now = new Date().toISOString()
    const slug = `job-${++serial}`
    const { lastInsertRowid } = insertPost.run('jobs', 'Bench', slug, now, now)
    const values: Record<string, string> = { job_id: slug, name: 'Bench', description: '', type: 'bench-noop', status: 'pending', progress: '0', metadata: '{}', priority: '0', attempts: '0', max_attempts: '1', run_at: now, data: JSON.stringify({ n }) }
    for (const key of META_KEYS) insertMeta.run(lastInsertRowid, key, values[key])
  }
  const one = db.transaction((n: number) => write(n))
  const many = db.transaction((count: number) => {
    for (let n = 0; n < count; n++) write(n)
  })
  const claim = db.transaction((limit: number) => {
    const ids = (due.all(limit) as { post_id: number }[]).map((row) => row.post_id)
    const now = new Date().toISOString()
    for (const id of ids) {
      setMeta.run(id, 'status', 'running')
      setMeta.run(id, 'attempts', '1')
      setMeta.run(id, 'started_at', now)
    }
    return ids
  })
  const complete = db.transaction((id: number) => {
    setMeta.run(id, 'status', 'completed')
    setMeta.run(id, 'completed_at', new Date().toISOString())
    setMeta.run(id, 'progress', '100')
  })
  try {
    let start = performance.now()
    for (let i = 0; i < w.singles; i++) one.immediate(i)
    const singlePerSec = w.singles / ((performance.now() - start) / 1000)
    start = performance.now()
    for (let i = 0; i < w.bulk; i += 1000) many.immediate(Math.min(1000, w.bulk - i))
    const bulkPerSec = w.bulk / ((performance.now() - start) / 1000)
    db.exec("DELETE FROM post_meta; DELETE FROM posts;")
    for (let i = 0; i < w.process; i += 1000) many.immediate(Math.min(1000, w.process - i))
    start = performance.now()
    let done = 0
    while (done < w.process) {
      const ids: number[] = claim.immediate(10)
      for (const id of ids) complete.immediate(id)
      done += ids.length
      if (ids.length === 0) throw new Error('raw SQLite: nothing to claim')
    }
    const processedPerSec = w.process / ((performance.now() - start) / 1000)
    return { bulkPerSec, singlePerSec, processedPerSec, latencyP50: NaN, latencyP99: NaN }
  } finally {
    db.close()
  }
}
