import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { PostStore } from '../core/store/PostStore.js'
import { migrateDown, migrateLatest } from '../migrations/index.js'
import { freshPostgresDatabase } from './support/harness.js'

/** One conformance suite, run against every dialect the store supports. */
function conformance(label: string, open: () => Promise<{ db: Database; cleanup(): Promise<void> } | null>) {
  describe(`PostStore on ${label}`, () => {
    let db: Database
    let store: PostStore
    let cleanup: () => Promise<void> = async () => {}
    let skip = false

    beforeAll(async () => {
      const opened = await open()
      if (!opened) {
        skip = true
        return
      }
      db = opened.db
      cleanup = opened.cleanup
      await migrateLatest(db.knex)
      store = new PostStore(db)
    })
    afterAll(async () => {
      await db?.close()
      await cleanup()
    })

    const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString()

    it('creates a post with all its meta in one transaction and reads it back', async (ctx) => {
      if (skip) return ctx.skip()
      const id = await store.createPost({ postType: 'book', title: 'Dune', slug: 'dune', createdAt: at(1), meta: { author: 'Herbert', pages: '412' } })
      const post = await store.getPost(id)
      expect(post).toMatchObject({ id, postType: 'book', title: 'Dune', slug: 'dune', createdAt: at(1), meta: { author: 'Herbert', pages: '412' } })
    })

    it('rolls back the post when a meta row fails (nothing half-written)', async (ctx) => {
      if (skip) return ctx.skip()
      await expect(
        store.createPosts([
          { postType: 'book', title: 'A', slug: 'a', createdAt: at(2), meta: { k: 'v' } },
          { postType: 'book', title: 'Dup', slug: 'dune', createdAt: at(2), meta: {} },
        ]),
      ).rejects.toThrow()
      expect(await store.findPostId('book', 'a')).toBeNull()
    })

    it('reads many posts with their meta in input order', async (ctx) => {
      if (skip) return ctx.skip()
      const ids = await store.createPosts(
        Array.from({ length: 30 }, (_, i) => ({ postType: 'item', title: `Item ${i}`, slug: `item-${i}`, createdAt: at(10 + i), meta: { n: String(i), parity: i % 2 ? 'odd' : 'even' } })),
      )
      const reversed = [...ids].reverse()
      const posts = await store.getPosts(reversed)
      expect(posts.map((p) => p.id)).toEqual(reversed)
      expect(posts[0]!.meta.n).toBe('29')
    })

    it('filters on meta before paging and counts every match', async (ctx) => {
      if (skip) return ctx.skip()
      const page = await store.queryPostIds({ postType: 'item', where: [{ key: 'parity', eq: 'odd' }], limit: 5, offset: 5 })
      expect(page.total).toBe(15)
      expect(page.ids).toHaveLength(5)
      const posts = await store.getPosts(page.ids)
      expect(posts.every((p) => p.meta.parity === 'odd')).toBe(true)
      const inList = await store.queryPostIds({ postType: 'item', where: [{ key: 'n', in: ['1', '2', '3'] }], limit: 10 })
      expect(inList.total).toBe(3)
      const searched = await store.queryPostIds({ postType: 'item', titleContains: 'ITEM 2', limit: 50 })
      expect(searched.total).toBe(11) // Item 2, Item 20..29
      const escaped = await store.queryPostIds({ postType: 'item', titleContains: '%', limit: 50 })
      expect(escaped.total).toBe(0)
    })

    it('updates several meta keys atomically, and deletes keys set to null', async (ctx) => {
      if (skip) return ctx.skip()
      const id = (await store.findPostId('item', 'item-0'))!
      const updated = await store.updatePost(id, { meta: { parity: 'none', extra: 'x', n: null }, updatedAt: at(100) })
      expect(updated!.meta).toEqual({ parity: 'none', extra: 'x' })
      expect(updated!.updatedAt).toBe(at(100))
    })

    it('updates conditionally: set X where meta Y = Z, and only one of two racers wins', async (ctx) => {
      if (skip) return ctx.skip()
      const id = await store.createPost({ postType: 'machine', title: 'm', slug: 'm', createdAt: at(1), meta: { state: 'running' } })
      const miss = await store.updatePost(id, { meta: { state: 'done' }, expect: [{ key: 'state', eq: 'pending' }], updatedAt: at(2) })
      expect(miss).toBeNull()
      const racers = await Promise.all(
        ['completed', 'failed', 'cancelled'].map((state) =>
          store.updatePost(id, { meta: { state }, expect: [{ key: 'state', eq: 'running' }], updatedAt: at(3) }),
        ),
      )
      expect(racers.filter(Boolean)).toHaveLength(1)
      const final = await store.getPost(id)
      expect(['completed', 'failed', 'cancelled']).toContain(final!.meta.state)
    })

    it('deletes posts with their meta (cascade) and deletes conditionally', async (ctx) => {
      if (skip) return ctx.skip()
      const id = await store.createPost({ postType: 'tmp', title: 't', slug: 't', createdAt: at(1), meta: { state: 'active' } })
      expect(await store.deletePostIf(id, [{ key: 'state', eq: 'done' }])).toBe(false)
      expect(await store.deletePostIf(id, [{ key: 'state', eq: 'active' }])).toBe(true)
      const orphans = await db.knex('post_meta').where('post_id', id).count({ n: '*' })
      expect(Number(orphans[0]!.n)).toBe(0)
    })

    it('reads the database clock', async (ctx) => {
      if (skip) return ctx.skip()
      const now = await store.databaseNow()
      expect(Math.abs(now - Date.now())).toBeLessThan(5000)
    })
  })
}

conformance('SQLite (:memory:)', async () => ({ db: createDatabase({ dialect: 'sqlite', filename: ':memory:' }), cleanup: async () => {} }))

conformance('PostgreSQL', async () => {
  const pg = await freshPostgresDatabase('store')
  if (!pg) return null
  return { db: createDatabase({ dialect: 'postgres', connectionString: pg.url }), cleanup: pg.drop }
})

describe('migrations', () => {
  it('run up and down on SQLite, leaving no tables behind', async () => {
    const db = createDatabase({ dialect: 'sqlite', filename: ':memory:' })
    await migrateLatest(db.knex)
    const tables = async () =>
      (await db.knex.raw("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'knex_%' AND name NOT LIKE 'sqlite_%'")).map((r: { name: string }) => r.name).sort()
    const core = ['auth_tokens', 'capabilities', 'job_counts', 'job_minute_counts', 'job_state', 'post_authors', 'post_meta', 'posts', 'role_capabilities', 'roles', 'user_roles', 'users']
    const created = await tables()
    expect(created).toEqual(expect.arrayContaining(core))
    await migrateDown(db.knex)
    expect(await tables()).toEqual([])
    await migrateLatest(db.knex)
    expect(await tables()).toEqual(created)
    await db.close()
  })

  it('sets the SQLite pragmas on a file database', async () => {
    const fs = await import('node:fs')
    const os = await import('node:os')
    const path = await import('node:path')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-'))
    const db = createDatabase({ dialect: 'sqlite', filename: path.join(dir, 'x.sqlite') })
    const [journal] = await db.knex.raw('PRAGMA journal_mode')
    const [fk] = await db.knex.raw('PRAGMA foreign_keys')
    const [sync] = await db.knex.raw('PRAGMA synchronous')
    const [busy] = await db.knex.raw('PRAGMA busy_timeout')
    expect(journal.journal_mode).toBe('wal')
    expect(fk.foreign_keys).toBe(1)
    expect(sync.synchronous).toBe(1) // NORMAL
    expect(busy.timeout).toBe(5000)
    await db.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
})
