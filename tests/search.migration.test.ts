import { afterAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { createJobStore } from '../core/store/jobs/index.js'
import type { JobStore } from '../core/store/jobs/JobStore.js'
import { seedJob } from '../bench/seed.js'
import { migrateLatest, migrationSource } from '../migrations/index.js'
import { freshPostgresDatabase } from './support/harness.js'

/**
 * Migration 008 on a database that already holds jobs: up indexes every existing job (its name,
 * data values and data paths), down removes the index and leaves the jobs as they were.
 */
function migrationSuite(label: string, open: () => Promise<{ db: Database; cleanup(): Promise<void> } | null>) {
  describe(`migration 008 (job search) on ${label}`, () => {
    const cleanups: (() => Promise<void>)[] = []
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup()
    })

    it('indexes the jobs that exist when it runs, and goes back down', async (ctx) => {
      const opened = await open()
      if (!opened) return ctx.skip()
      const { db } = opened
      cleanups.push(opened.cleanup, () => db.close())
      await migrateLatest(db.knex)
      await db.knex.migrate.down({ migrationSource, name: '008_job_search' })
      expect(await db.knex.schema.hasTable('job_search')).toBe(false)

      // Jobs written while the index did not exist (the search code is not used for them).
      const store: JobStore = createJobStore(db)
      const job = seedJob({ status: 'completed', at: '2026-01-01T00:00:00.000Z' })
      job.name = 'Legacy albatross'
      job.meta = { data: JSON.stringify({ order: { id: 9001 }, city: 'Reykjavik' }), result: JSON.stringify({ note: 'petrel' }), description: 'from before' }
      // The stores write the index themselves: insert as the previous version did.
      const [inserted] = await db.knex('posts')
        .insert({ post_type_slug: 'jobs', title: job.name, slug: job.jobId, status: 'publish', created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z' })
        .returning('id')
      const postId = typeof inserted === 'object' ? Number((inserted as { id: number }).id) : Number(inserted)
      const state = job.state
      await db.knex('job_state').insert({
        post_id: postId, type: state.type, status: state.status, queued: 1, delayed: 0, priority: 0, run_at: state.runAt, attempts: 1,
        max_attempts: 3, progress: 100, show_notification: 1, created_at: state.createdAt, updated_at: state.updatedAt,
        started_at: state.startedAt, completed_at: state.completedAt,
      })
      for (const [key, value] of Object.entries(job.meta)) await db.knex('post_meta').insert({ post_id: postId, meta_key: key, meta_value: value })

      await migrateLatest(db.knex)
      const find = async (query: { search?: string; dataFilters?: { path: string; value: string }[] }) =>
        (await store.list({ ...query, sort: '-createdAt', limit: 10, offset: 0 })).jobs.map((stored) => stored.name)
      expect(await find({ search: 'albatross' })).toEqual(['Legacy albatross'])
      expect(await find({ search: 'reykja petrel' })).toEqual(['Legacy albatross'])
      expect(await find({ dataFilters: [{ path: 'order.id', value: '9001' }] })).toEqual(['Legacy albatross'])
      expect(await find({ search: 'order' })).toEqual([])

      await db.knex.migrate.down({ migrationSource, name: '008_job_search' })
      expect(await db.knex.schema.hasTable('job_search')).toBe(false)
      expect(Number((await db.knex('job_state').count({ n: '*' }))[0]!.n)).toBe(1)
      await store.close()
    })
  })
}

migrationSuite('SQLite', async () => ({ db: createDatabase({ dialect: 'sqlite', filename: ':memory:' }), cleanup: async () => {} }))
migrationSuite('PostgreSQL', async () => {
  const pg = await freshPostgresDatabase('search_migration')
  if (!pg) return null
  return { db: createDatabase({ dialect: 'postgres', connectionString: pg.url }), cleanup: () => pg.drop() }
})
