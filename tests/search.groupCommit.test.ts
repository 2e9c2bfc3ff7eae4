import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v4 as uuidv4 } from 'uuid'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { createJobStore } from '../core/store/jobs/index.js'
import type { JobListQuery, JobStore, NewJob } from '../core/store/jobs/JobStore.js'
import { ownerScope } from '../core/store/jobs/jobSql.js'
import { DIRECT_ROWS, PENDING_LIMIT } from '../core/store/jobs/search/sqliteIndex.js'
import { migrateLatest } from '../migrations/index.js'

/**
 * The SQLite job store writes a transaction's search index rows after its savepoints, just
 * before COMMIT (search/sqliteIndex.ts PendingSearchIndex): what a group commit of one turn does
 * to the index when one of its pieces fails, when a job is deleted or changed in the same turn,
 * and when a search runs in that turn. Then the pending list (migrations/012): rows of small
 * transactions wait there, searches find them there, and they move into FTS5 unchanged.
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

    /**
     * Jobs the index holds a row of: in the FTS5 table (its docsize table has one per job) or only
     * in the pending list (a pending row that `replaces` has one in FTS5 too).
     */
    const indexRows = async () =>
      Number(
        ((await db.knex.raw(
          `SELECT (SELECT COUNT(*) FROM job_search_docsize) + (SELECT COUNT(*) FROM job_search_pending WHERE replaces = 0) AS n`,
        )) as { n: number }[])[0]!.n,
      )
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

    const pendingRows = async () => Number(((await db.knex.raw('SELECT COUNT(*) AS n FROM job_search_pending')) as { n: number }[])[0]!.n)
    const total = async (search: string) => (await store.count({ search }, 10_000)).n

    it('finds a pending row, an older row a pending change replaces never, and the same after the move', async () => {
      await store.maintain() // start from an empty pending list
      const [kept] = await store.insert([newJob('pending ibis', {}, { data: '{"colour":"scarlet"}' })])
      const [changed] = await store.insert([newJob('pending heron', {}, { data: '{"colour":"grey"}' })])
      expect(await pendingRows()).toBe(2)
      await store.maintain() // both into FTS5
      expect(await pendingRows()).toBe(0)
      // The change writes a pending row that replaces heron's FTS5 row.
      await store.change({ postId: changed!, from: ['pending'], set: {}, meta: { data: '{"colour":"white"}' } }, T0 + 1)
      expect(await pendingRows()).toBe(1)
      const check = async () => {
        expect(await names('grey')).toEqual([])
        expect(await total('grey')).toBe(0)
        expect(await names('white')).toEqual(['pending heron'])
        expect((await names('pending')).sort()).toEqual(['pending heron', 'pending ibis'])
        expect(await total('pending')).toBe(2)
        expect((await store.list({ ...searchFor('scarlet'), dataFilters: [{ path: 'colour', value: 'scarlet' }] })).jobs.map((job) => job.state.postId)).toEqual([kept])
        expect((await store.list({ ...searchFor('pen'), dataFilters: [{ path: 'colour', value: 'white' }] })).jobs.map((job) => job.state.postId)).toEqual([changed])
        expect((await store.count({ dataFilters: [{ path: 'colour', value: 'grey' }] }, 10_000)).n).toBe(0)
      }
      await check()
      await store.maintain()
      expect(await pendingRows()).toBe(0)
      await check()
      expect(await indexRows()).toBe(await jobRows())
    })

    it(`moves the pending rows into FTS5 past ${PENDING_LIMIT}, and with any transaction of ${DIRECT_ROWS} rows or more`, async () => {
      await store.maintain()
      for (let i = 0; i <= PENDING_LIMIT; i++) await store.insert([newJob(`single oryx ${i}`)])
      // The transaction that passed the limit moved them all.
      expect(await pendingRows()).toBe(0)
      await store.insert([newJob('lone oryx')])
      expect(await pendingRows()).toBe(1)
      await store.insert(Array.from({ length: DIRECT_ROWS }, (_, i) => newJob(`herd oryx ${i}`)))
      expect(await pendingRows()).toBe(0)
      expect(await total('oryx')).toBe(PENDING_LIMIT + 2 + DIRECT_ROWS)
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
