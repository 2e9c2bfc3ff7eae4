import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v4 as uuidv4 } from 'uuid'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { createJobStore } from '../core/store/jobs/index.js'
import type { JobListQuery, JobStore, NewJob } from '../core/store/jobs/JobStore.js'
import { ownerScope } from '../core/store/jobs/jobSql.js'
import { migrateLatest } from '../migrations/index.js'

/**
 * The SQLite job store writes a transaction's search index rows after its savepoints, just
 * before COMMIT (search/sqliteIndex.ts PendingSearchIndex): what a group commit of one turn does
 * to the index when one of its pieces fails, when a job is deleted or changed in the same turn,
 * and when a search runs in that turn.
 */
const T0 = Date.parse('2026-06-01T00:00:00.000Z')

function newJob(name: string, over: Partial<NewJob['state']> = {}, meta: Record<string, string> = {}): NewJob {
  const createdBy = over.createdBy ?? null
  return {
    jobId: uuidv4(),
    name,
    meta,
    state: {
      type: 'work', status: 'pending', queued: true, delayed: false, priority: 0, runAt: T0, attempts: 0, maxAttempts: 3,
      attemptToken: null, lockedUntil: null, progress: 0, timeoutMs: null, showNotification: true, createdBy,
      owner: ownerScope(createdBy, 'test'), source: 'test', parentJobId: null, pausedFrom: null, createdAt: T0, updatedAt: T0,
      startedAt: null, completedAt: null, ...over,
    },
  }
}

const searchFor = (search: string): JobListQuery => ({ search, sort: '-createdAt', limit: 50, offset: 0 })

for (const where of ['memory', 'file'] as const) {
  describe(`search index rows in a group commit (SQLite ${where})`, () => {
    let db: Database
    let store: JobStore
    let dir = ''

    beforeAll(async () => {
      dir = where === 'file' ? fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-search-gc-')) : ''
      db = await createDatabase({ dialect: 'sqlite', filename: where === 'file' ? path.join(dir, 'jobs.sqlite') : ':memory:' })
      await migrateLatest(db.knex)
      store = createJobStore(db)
    })
    afterAll(async () => {
      await store?.close()
      await db?.close()
      if (dir) fs.rmSync(dir, { recursive: true, force: true })
    })

    /** Rows the FTS5 table holds (its docsize table has one per indexed job). */
    const indexRows = async () => Number(((await db.knex.raw('SELECT COUNT(*) AS n FROM job_search_docsize')) as { n: number }[])[0]!.n)
    const jobRows = async () => Number(((await db.knex.raw('SELECT COUNT(*) AS n FROM job_state')) as { n: number }[])[0]!.n)
    const names = async (search: string) => (await store.list(searchFor(search))).jobs.map((job) => job.name)

    it('a piece that fails in the same transaction leaves no index row; the others are found', async () => {
      // One turn: three creates group-committed; the middle one's second job breaks a foreign key
      // (no user 999) after its first job was written, so the whole piece rolls back.
      const results = await Promise.allSettled([
        store.insert([newJob('alpha walrus')]),
        store.insert([newJob('beta walrus'), newJob('beta two', { createdBy: 999 })]),
        store.insert([newJob('gamma walrus')]),
      ])
      expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect((await names('walrus')).sort()).toEqual(['alpha walrus', 'gamma walrus'])
      expect(await names('beta')).toEqual([])
      expect(await indexRows()).toBe(await jobRows())
    })

    it('a job created and deleted in the same turn leaves no index row', async () => {
      const before = await indexRows()
      const old = newJob('ephemeral narwhal', { status: 'completed', completedAt: T0 - 60_000, progress: 100 })
      const [inserted, deleted] = await Promise.all([store.insert([old]), store.deleteFinishedBefore(T0, 10)])
      expect(inserted).toHaveLength(1)
      expect(deleted).toBe(1)
      expect(await names('narwhal')).toEqual([])
      expect(await indexRows()).toBe(before)
      expect(await indexRows()).toBe(await jobRows())
    })

    it('a change of searchable meta is indexed with the change; a search in the same turn sees what the turn wrote', async () => {
      const [postId] = await store.insert([newJob('delta job')])
      const change = store.change({ postId: postId!, from: ['pending'], set: {}, meta: { result: '{"animal":"okapi"}' } }, T0 + 1)
      const created = store.insert([newJob('epsilon okapi')])
      // Queued in the same turn as the writes above: on `:memory:` it runs in their transaction,
      // on a file on the reader thread after their COMMIT; either way it sees both.
      const searched = created.then(() => names('okapi'))
      await Promise.all([change, created])
      expect((await searched).sort()).toEqual(['delta job', 'epsilon okapi'])
      expect(await indexRows()).toBe(await jobRows())
    })

    it('a large insert (slices of one transaction) indexes every job, and a failed one indexes none', async () => {
      const before = await indexRows()
      const many = Array.from({ length: 450 }, (_, i) => newJob(`bulk quagga ${i}`))
      await store.insert(many)
      expect((await store.list({ ...searchFor('quagga'), limit: 1000 })).jobs).toHaveLength(450)
      const broken = Array.from({ length: 450 }, (_, i) => newJob(`broken zebu ${i}`, i === 420 ? { createdBy: 999 } : {}))
      await expect(store.insert(broken)).rejects.toThrow()
      expect(await names('zebu')).toEqual([])
      expect(await indexRows()).toBe(before + 450)
      expect(await indexRows()).toBe(await jobRows())
    })
  })
}
