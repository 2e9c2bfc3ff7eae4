import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v4 as uuidv4 } from 'uuid'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { createJobStore } from '../core/store/jobs/index.js'
import type { JobStore, NewJob } from '../core/store/jobs/JobStore.js'
import { ownerScope } from '../core/store/jobs/jobSql.js'
import { migrateLatest } from '../migrations/index.js'
import { freshPostgresDatabase } from './support/harness.js'

/**
 * One suite for both JobStore implementations: what the queue relies on, tested on the store
 * itself (no registry): fences, exclusive claims, claim order, delayed jobs, counters, paging.
 */
const T0 = Date.parse('2026-06-01T00:00:00.000Z')

function newJob(over: Partial<NewJob['state']> = {}, meta: Record<string, string> = {}): NewJob {
  const createdBy = over.createdBy ?? null
  const source = over.source ?? 'conformance'
  return {
    jobId: uuidv4(),
    name: 'job',
    meta,
    state: {
      type: 'work', status: 'pending', queued: true, delayed: false, priority: 0, runAt: T0, attempts: 0, maxAttempts: 3,
      attemptToken: null, lockedUntil: null, progress: 0, timeoutMs: null, showNotification: true, createdBy,
      owner: ownerScope(createdBy, source), source, parentJobId: null, pausedFrom: null, createdAt: T0, updatedAt: T0,
      startedAt: null, completedAt: null, ...over,
    },
  }
}

function conformance(label: string, open: () => Promise<{ db: Database; drop(): Promise<void> } | null>) {
  describe(`JobStore conformance: ${label}`, () => {
    let db: Database
    let store: JobStore
    let drop = async () => {}
    let skipped = false

    beforeAll(async () => {
      const opened = await open()
      if (!opened) return void (skipped = true)
      ;({ db, drop } = opened)
      await migrateLatest(db.knex)
      store = createJobStore(db)
    })
    afterAll(async () => {
      await store?.close()
      await db?.close()
      await drop()
    })
    const claimOne = (type: string, now = T0 + 1000) => store.claim({ slots: [[type, 1]], limit: 1, now, leaseMs: 30_000 })

    it('inserts and reads back a job exactly (typed row, name, meta)', async (ctx) => {
      if (skipped) return ctx.skip()
      const job = newJob({ type: 'read-back', priority: 7, timeoutMs: 5000, parentJobId: uuidv4() }, { data: '{"a":1}', description: 'd' })
      const [postId] = await store.insert([job])
      const stored = await store.getByJobId(job.jobId)
      expect(stored).toEqual({ jobId: job.jobId, name: 'job', state: { ...job.state, postId }, meta: { data: '{"a":1}', description: 'd' } })
      expect(await store.getByPostIds([postId!, 999_999])).toEqual([stored])
      expect(await store.getByJobIds([job.jobId, uuidv4()])).toEqual([stored])
      expect(await store.getByJobId(uuidv4())).toBeNull()
    })

    it('two claimers never get the same job', async (ctx) => {
      if (skipped) return ctx.skip()
      await store.insert(Array.from({ length: 40 }, () => newJob({ type: 'race' })))
      const claims = await Promise.all(Array.from({ length: 8 }, () => store.claim({ slots: [['race', 10]], limit: 10, now: T0 + 1000, leaseMs: 30_000 })))
      const ids = claims.flat().map((job) => job.state.postId)
      expect(ids).toHaveLength(40)
      expect(new Set(ids).size).toBe(40)
      const tokens = claims.flat().map((job) => job.state.attemptToken)
      expect(new Set(tokens).size).toBe(40)
      for (const job of claims.flat()) expect(job.state).toMatchObject({ status: 'running', attempts: 1, lockedUntil: T0 + 31_000, startedAt: T0 + 1000 })
    })

    it('claims in queue order: priority first, then run time, then creation; per type; never a delayed job', async (ctx) => {
      if (skipped) return ctx.skip()
      const [low, high, earlier, otherType, delayed] = await store.insert([
        newJob({ type: 'order', priority: 0, runAt: T0 + 10 }),
        newJob({ type: 'order', priority: 5, runAt: T0 + 20 }),
        newJob({ type: 'order', priority: 0, runAt: T0 + 5 }),
        newJob({ type: 'order-other', priority: 100 }),
        newJob({ type: 'order', priority: 50, runAt: T0 + 3600_000, delayed: true }),
      ])
      const claimed = await store.claim({ slots: [['order', 10]], limit: 10, now: T0 + 1000, leaseMs: 1000 })
      expect(claimed.map((job) => job.state.postId)).toEqual([high, earlier, low])
      expect(await store.promoteDue(T0 + 1000)).toEqual({ promoted: 0, nextDueAt: T0 + 3600_000 })
      expect(await claimOne('order', T0 + 3600_000)).toEqual([])
      expect(await store.promoteDue(T0 + 3600_000)).toMatchObject({ promoted: 1 })
      expect((await claimOne('order', T0 + 3600_000)).map((job) => job.state.postId)).toEqual([delayed])
      expect((await claimOne('order-other')).map((job) => job.state.postId)).toEqual([otherType])
    })

    it('a stale token or a job that is not running cannot settle', async (ctx) => {
      if (skipped) return ctx.skip()
      await store.insert([newJob({ type: 'fence' })])
      const [job] = await claimOne('fence')
      const { postId, attemptToken } = job!.state
      // Wrong token: refused; right token from a status not allowed: refused.
      expect(await store.complete([{ postId, token: 'stale', status: 'completed', result: '1', clearError: false, now: T0 + 2000 }])).toEqual([null])
      expect(await store.change({ postId, from: ['pending'], token: attemptToken!, set: { status: 'failed' } }, T0 + 2000)).toBeNull()
      // Cancelled (token retired): the attempt's late completion is refused.
      const cancelled = await store.change({ postId, from: ['running'], set: { status: 'cancelled', attemptToken: null, lockedUntil: null, completedAt: T0 + 2000 } }, T0 + 2000)
      expect(cancelled).toMatchObject({ status: 'cancelled', attemptToken: null })
      expect(await store.complete([{ postId, token: attemptToken!, status: 'completed', result: '1', clearError: false, now: T0 + 3000 }])).toEqual([null])
      expect(await store.renewLeases([attemptToken!], T0 + 99_000, T0 + 3000)).toEqual([])
      expect((await store.getByPostIds([postId]))[0]!.state.status).toBe('cancelled')
    })

    it('completes a batch in one go, each fenced by its own token, with its result and no error left', async (ctx) => {
      if (skipped) return ctx.skip()
      await store.insert([newJob({ type: 'batch' }), newJob({ type: 'batch' })])
      const claimed = await store.claim({ slots: [['batch', 2]], limit: 2, now: T0 + 1000, leaseMs: 30_000 })
      await store.change({ postId: claimed[0]!.state.postId, from: ['running'], set: {}, meta: { error_message: 'earlier attempt' } }, T0 + 1000)
      const results = await Promise.all([
        store.complete([{ postId: claimed[0]!.state.postId, token: claimed[0]!.state.attemptToken!, status: 'completed', result: '{"n":1}', clearError: true, now: T0 + 2000 }]),
        store.complete([{ postId: claimed[1]!.state.postId, token: 'not-its-token', status: 'completed', result: '{"n":2}', clearError: false, now: T0 + 2000 }]),
      ])
      expect(results[0]![0]).toMatchObject({ status: 'completed', progress: 100, completedAt: T0 + 2000, attemptToken: null, lockedUntil: null })
      expect(results[1]).toEqual([null])
      const [done] = await store.getByPostIds([claimed[0]!.state.postId])
      expect(done!.meta).toEqual({ result: '{"n":1}' })
    })

    it('renews only live leases, and finds expired ones oldest first', async (ctx) => {
      if (skipped) return ctx.skip()
      await store.insert([newJob({ type: 'lease' }), newJob({ type: 'lease' })])
      const claimed = await store.claim({ slots: [['lease', 2]], limit: 2, now: T0 + 1000, leaseMs: 1000 })
      const renewed = await store.renewLeases([claimed[0]!.state.attemptToken!], T0 + 60_000, T0 + 1500)
      expect(renewed).toEqual([claimed[0]!.state.postId])
      const expired = await store.expiredLeases(T0 + 5000, 10)
      expect(expired.map((job) => job.state.postId)).toContain(claimed[1]!.state.postId)
      expect(expired.map((job) => job.state.postId)).not.toContain(claimed[0]!.state.postId)
      // Recovery is fenced by the lease having expired: a renewed one cannot be taken over.
      const stolen = await store.change({ postId: claimed[0]!.state.postId, from: ['running'], token: claimed[0]!.state.attemptToken!, lockedBefore: T0 + 5000, set: { status: 'pending' } }, T0 + 5000)
      expect(stolen).toBeNull()
    })

    it('keeps counters per scope, type and status through inserts, moves and deletes', async (ctx) => {
      if (skipped) return ctx.skip()
      const scope = 'p:counted'
      const ids = await store.insert(Array.from({ length: 5 }, () => newJob({ type: 'counted', source: 'counted' })))
      await claimOne('counted')
      await store.change({ postId: ids[4]!, from: ['pending'], set: { status: 'cancelled', completedAt: T0 + 10 } }, T0 + 10)
      expect(await store.deleteIf(ids[4]!, ['cancelled'])).toBe(true)
      expect(await store.deleteIf(ids[3]!, ['cancelled'])).toBe(false)
      await store.maintain()
      const counts = (await store.counts(scope)).map((row) => [row.type, row.status, row.n]).sort()
      expect(counts).toEqual([['counted', 'pending', 3], ['counted', 'running', 1]].sort())
      const all = await store.counts('')
      expect(all.find((row) => row.type === 'counted' && row.status === 'pending')?.n).toBe(3)
    })

    it('lists one status range at a time, newest first, by offset and by key', async (ctx) => {
      if (skipped) return ctx.skip()
      const ids = await store.insert(Array.from({ length: 12 }, (_, i) => newJob({ type: 'listed', createdAt: T0 + i * 1000, status: i % 2 ? 'failed' : 'pending', completedAt: i % 2 ? T0 + i : null })))
      const page = await store.list({ type: 'listed', sort: '-createdAt', limit: 5, offset: 0 })
      expect(page.jobs.map((job) => job.state.postId)).toEqual([...ids].reverse().slice(0, 5))
      const last = page.jobs.at(-1)!.state
      const next = await store.list({ type: 'listed', sort: '-createdAt', limit: 5, offset: 0, after: { value: last.createdAt, postId: last.postId } })
      expect(next.jobs.map((job) => job.state.postId)).toEqual([...ids].reverse().slice(5, 10))
      const failed = await store.list({ type: 'listed', statuses: ['failed'], sort: 'createdAt', limit: 3, offset: 1 })
      expect(failed.jobs.map((job) => job.state.postId)).toEqual([ids[3], ids[5], ids[7]])
      expect(await store.count({ type: 'listed', statuses: ['failed'] }, 100)).toEqual({ n: 6, complete: true })
      expect(await store.count({ type: 'listed' }, 4)).toEqual({ n: 4, complete: true })
    })

    it('deletes finished jobs completed before a cutoff, in batches, with their meta', async (ctx) => {
      if (skipped) return ctx.skip()
      const old = await store.insert(Array.from({ length: 7 }, (_, i) => newJob({ type: 'old', status: 'completed', completedAt: T0 - 100_000 + i }, { result: '1' })))
      const [recent, active] = await store.insert([newJob({ type: 'old', status: 'completed', completedAt: T0 }), newJob({ type: 'old' })])
      expect(await store.deleteFinishedBefore(T0 - 1, 5)).toBe(5)
      expect(await store.deleteFinishedBefore(T0 - 1, 5)).toBe(2)
      expect(await store.deleteFinishedBefore(T0 - 1, 5)).toBe(0)
      expect(await store.getByPostIds([...old, recent!, active!])).toHaveLength(2)
      const orphans = await db.knex('post_meta').whereIn('post_id', old).count<{ n: number | string }[]>({ n: '*' })
      expect(Number(orphans[0]!.n)).toBe(0)
    })

    it('fences a change on meta values (a workflow cursor moves once)', async (ctx) => {
      if (skipped) return ctx.skip()
      const [postId] = await store.insert([newJob({ type: 'cursor', status: 'running' }, { step: '0' })])
      const moves = await Promise.all([0, 1, 2].map(() => store.change({ postId: postId!, from: ['running'], set: {}, meta: { step: '1' }, metaEquals: { step: '0' } }, T0)))
      expect(moves.filter(Boolean)).toHaveLength(1)
    })
  })
}

conformance('SQLite', async () => ({ db: createDatabase({ dialect: 'sqlite', filename: ':memory:' }), drop: async () => {} }))
conformance('PostgreSQL', async () => {
  const database = await freshPostgresDatabase('job_store')
  return database && { db: createDatabase({ dialect: 'postgres', connectionString: database.url }), drop: database.drop }
})
