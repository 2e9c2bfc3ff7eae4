import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Job } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { compareQueueOrder } from '../core/registry/queueOrder.js'
import { planReorder } from '../core/registry/reorderJobs.js'
import { connectWs, eventually, freshPostgresDatabase, startJobpost, userWithRole, type TestUser } from './support/harness.js'

/**
 * POST /api/v1/jobs/reorder and GET /api/v1/jobs/queue on both dialects: after a reorder a single
 * worker with concurrency 1 starts the listed jobs in the listed order; the Queue view lists in
 * the claim's order; a job that is not movable changes nothing.
 */

describe('planReorder', () => {
  it('gives every job the highest priority and distinct runAts before the earliest, in the listed order', () => {
    const plan = planReorder([
      { priority: 0, runAt: 5000 },
      { priority: 7, runAt: 9000 },
      { priority: -2, runAt: 4000 },
    ])
    expect(plan).toEqual({ priority: 7, runAts: [3997, 3998, 3999] })
  })
})

const dialects = [
  { name: 'SQLite', database: async () => ({ config: {}, drop: async () => {} }) },
  {
    name: 'PostgreSQL',
    database: async () => {
      const pg = await freshPostgresDatabase('reorder')
      return pg ? { config: { database: { dialect: 'postgres' as const, connectionString: pg.url } }, drop: pg.drop } : null
    },
  },
]

for (const dialect of dialects) {
  describe(`reorder on ${dialect.name}`, () => {
    let db: Awaited<ReturnType<(typeof dialect)['database']>>
    let jobpost: Jobpost & { url: string }
    let admin: TestUser
    let editor: TestUser
    const started: string[] = []
    let typeCounter = 0

    beforeAll(async () => {
      db = await dialect.database()
      if (!db) return
      jobpost = await startJobpost({ ...db.config, workerConcurrency: 1, workerPollMs: 10 })
      // One worker, concurrency 1, running all along: a type's jobs wait until its processor registers.
      jobpost.runtime.start()
      admin = await userWithRole(jobpost, 'administrator')
      editor = await userWithRole(jobpost, 'editor')
    })
    afterAll(async () => {
      await jobpost?.close({ graceMs: 100 })
      await db?.drop()
    })

    /** A fresh job type; its jobs are queued (enqueueJob) but nothing claims them before `runAll`. */
    function newType(): string {
      return `reorder-${dialect.name.toLowerCase()}-${++typeCounter}`
    }

    /** Jobs due in the past, some with the same runAt (then their ids decide), some with priorities. */
    async function seed(type: string, specs: { name: string; priority?: number; agoMs?: number }[]): Promise<Job[]> {
      const now = Date.now()
      const hooks = jobpost.pluginHooks('reorder-test')
      const jobs: Job[] = []
      for (const spec of specs) {
        jobs.push(
          await hooks.enqueueJob({
            type,
            name: spec.name,
            priority: spec.priority ?? 0,
            runAt: new Date(now - (spec.agoMs ?? 10_000)).toISOString(),
          }),
        )
      }
      return jobs
    }

    const api = (user: TestUser) => ({
      reorder: (jobIds: unknown) =>
        request(jobpost.app).post('/api/v1/jobs/reorder').set('Authorization', `Bearer ${user.token}`).send({ jobIds }),
      queue: (type: string, query = '') =>
        request(jobpost.app).get(`/api/v1/jobs/queue?type=${encodeURIComponent(type)}${query}`).set('Authorization', `Bearer ${user.token}`),
    })

    /** Registers a processor for `type` that records the order in which its jobs start. */
    function process(type: string) {
      started.length = 0
      jobpost.pluginHooks('reorder-test').registerJobProcessor(type, async (job) => void started.push(job.name), { concurrency: 1 })
    }

    /** Runs the queue of `type` on the one worker (concurrency 1); the names in the order they started. */
    async function runAll(type: string, count: number): Promise<string[]> {
      process(type)
      await eventually(async () => (await jobpost.jobs.getJobs({ type, status: 'completed', limit: 1 })).total === count, { timeoutMs: 15_000 })
      return [...started]
    }

    it('after a reorder, a single worker with concurrency 1 starts the jobs in exactly the given order', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const jobs = await seed(type, [
        { name: 'a', agoMs: 9000 },
        { name: 'b', agoMs: 9000 },
        { name: 'c', priority: 3, agoMs: 5000 },
        { name: 'd', agoMs: 20_000 },
        { name: 'e', priority: -1, agoMs: 30_000 },
        { name: 'f', agoMs: 9000 },
      ])
      const byName = new Map(jobs.map((job) => [job.name, job]))
      // Without a reorder the worker would start c, d, a, b, f, e.
      const wanted = ['e', 'f', 'a', 'c', 'd', 'b']
      const res = await api(admin).reorder(wanted.map((name) => byName.get(name)!.jobId)).expect(200)
      expect(res.body.data.map((job: Job) => job.name)).toEqual(wanted)
      expect(new Set(res.body.data.map((job: Job) => job.priority))).toEqual(new Set([3]))

      // The Queue view shows the same order the worker will take.
      const view = await api(admin).queue(type).expect(200)
      expect(view.body.data.map((job: Job) => job.name)).toEqual(wanted)
      expect(view.body.meta).toMatchObject({ total: 6 })
      expect(await runAll(type, 6)).toEqual(wanted)
    })

    it('a reorder of some jobs orders them relative to each other and keeps the head of the queue ahead of the rest', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      // Created in one millisecond: the same runAt, so only their ids order them.
      const hooks = jobpost.pluginHooks('reorder-test')
      const runAt = new Date(Date.now() - 60_000).toISOString()
      const jobs = await hooks.enqueueJobs(Array.from({ length: 12 }, (_, i) => ({ type, name: `j${i}`, runAt })))
      // The admin moves j5 to the top of the first six it shows: it sends that head, reordered.
      const head = ['j5', 'j0', 'j1', 'j2', 'j3', 'j4']
      const byName = new Map(jobs.map((job) => [job.name, job]))
      await api(admin).reorder(head.map((name) => byName.get(name)!.jobId)).expect(200)
      const order = await runAll(type, 12)
      expect(order).toEqual([...head, 'j6', 'j7', 'j8', 'j9', 'j10', 'j11'])
    })

    it('the Queue view and the claim agree on the order (priorities, runAts and ids mixed)', async (ctx) => {
      if (!db) return ctx.skip()
      const type = `reorder-agree-${dialect.name.toLowerCase()}`
      const hooks = jobpost.pluginHooks('reorder-test')
      const now = Date.now()
      const specs = Array.from({ length: 40 }, (_, i) => ({
        type,
        name: `q${i}`,
        priority: (i * 7) % 3,
        runAt: new Date(now - 1000 * ((i * 13) % 5)).toISOString(),
      }))
      await hooks.enqueueJobs(specs)
      const view = (await api(admin).queue(type, '&limit=500').expect(200)).body.data as Job[]
      expect(view).toHaveLength(40)
      // The comparator the admin UI uses sorts the same way.
      expect([...view].sort(compareQueueOrder).map((job) => job.jobId)).toEqual(view.map((job) => job.jobId))
      const claimed: string[] = []
      for (;;) {
        const batch = await jobpost.jobs.claimDueJobs({ slots: new Map([[type, 3]]), limit: 3, leaseMs: 60_000 })
        if (batch.length === 0) break
        claimed.push(...batch.map((job) => job.jobId))
      }
      expect(claimed).toEqual(view.map((job) => job.jobId))
    })

    it('refuses the whole reorder (409, nothing changed) when one job is not pending, delayed, or tracked', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const [a, b, c] = await seed(type, [{ name: 'a', priority: 1 }, { name: 'b' }, { name: 'c' }])
      const before = (await api(admin).queue(type).expect(200)).body.data as Job[]

      await jobpost.jobs.cancel(b!.jobId)
      const cancelled = await api(admin).reorder([c!.jobId, b!.jobId, a!.jobId]).expect(409)
      expect(cancelled.body).toMatchObject({ success: false, error: { code: 'ILLEGAL_TRANSITION' } })
      expect(cancelled.body.error.message).toContain(b!.jobId)
      expect(cancelled.body.error.message).toContain('cancelled')

      const delayed = await jobpost.pluginHooks('reorder-test').enqueueJob({ type, name: 'later', delay: 3_600_000 })
      const late = await api(admin).reorder([c!.jobId, delayed.jobId]).expect(409)
      expect(late.body.error.message).toMatch(/scheduled for .*run-now/)

      const tracked = await jobpost.jobs.createJobs([{ name: 'tracked', type: 'reorder-untyped' }])
      await api(admin).reorder([c!.jobId, tracked[0]!.jobId]).expect(409)

      // Nothing moved: same priorities, runAts and order as before.
      const after = (await api(admin).queue(type).expect(200)).body.data as Job[]
      expect(after.map((job) => [job.jobId, job.priority, job.runAt])).toEqual(
        before.filter((job) => job.jobId !== b!.jobId).map((job) => [job.jobId, job.priority, job.runAt]),
      )
      // The delayed job is listed apart.
      const later = (await api(admin).queue(type, '&delayed=true').expect(200)).body.data as Job[]
      expect(later.map((job) => job.jobId)).toEqual([delayed.jobId])
    })

    it('checks the caller and the input: 401, 403 without manage_jobs, 400, 404 for unknown jobs', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const [a, b] = await seed(type, [{ name: 'a' }, { name: 'b' }])
      await request(jobpost.app).post('/api/v1/jobs/reorder').send({ jobIds: [a!.jobId] }).expect(401)
      const forbidden = await api(editor).reorder([b!.jobId, a!.jobId]).expect(403)
      expect(forbidden.body.error.code).toBe('FORBIDDEN')
      for (const jobIds of [[], 'x', [a!.jobId, a!.jobId], ['not-a-uuid'], Array.from({ length: 501 }, () => a!.jobId), [1]]) {
        const res = await api(admin).reorder(jobIds).expect(400)
        expect(res.body.error.code).toBe('VALIDATION_FAILED')
      }
      await request(jobpost.app)
        .post('/api/v1/jobs/reorder')
        .set('Authorization', `Bearer ${admin.token}`)
        .send({ jobIds: [a!.jobId], extra: 1 })
        .expect(400)
      const unknown = await api(admin).reorder([b!.jobId, '00000000-0000-4000-8000-000000000000']).expect(404)
      expect(unknown.body.error.code).toBe('JOB_NOT_FOUND')
      await api(admin).queue('').expect(400)
      await api(admin).queue(type, '&delayed=maybe').expect(400)
      // The order did not change.
      expect(((await api(admin).queue(type).expect(200)).body.data as Job[]).map((job) => job.name)).toEqual(['a', 'b'])
    })

    it('broadcasts each moved job as a job_update', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const [a, b] = await seed(type, [{ name: 'a', priority: 2 }, { name: 'b' }])
      const ws = await connectWs(jobpost, { token: admin.token })
      try {
        await api(admin).reorder([b!.jobId, a!.jobId]).expect(200)
        const update = (await ws.next((m) => m.type === 'job_update' && m.job.jobId === b!.jobId && m.job.priority === 2)) as {
          job: Job
        }
        const other = (await ws.next((m) => m.type === 'job_update' && m.job.jobId === a!.jobId && Date.parse(m.job.runAt) > Date.parse(update.job.runAt))) as {
          job: Job
        }
        expect(compareQueueOrder(update.job, other.job)).toBeLessThan(0)
      } finally {
        await ws.close()
      }
    })

    it('the store moves all or nothing: a job that stopped being movable after the check rolls the others back', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const [a, b, c] = await seed(type, [{ name: 'a' }, { name: 'b' }, { name: 'c' }])
      // b is claimed between the registry's check and the store's write (what a worker on another instance may do).
      await jobpost.jobs.claimDueJobs({ slots: new Map([[type, 1]]), limit: 1, leaseMs: 60_000 })
      const [stateA, stateB, stateC] = (await jobpost.jobStore.getByPostIds([a!.id, b!.id, c!.id])).map((job) => job.state)
      const running = [stateA, stateB, stateC].find((state) => state!.status === 'running')!
      const outcome = await jobpost.jobStore.reorder({ postIds: [c!.id, b!.id, a!.id], priority: 9, runAts: [1, 2, 3], now: Date.now() })
      expect(outcome).toEqual({ ok: false, postId: running.postId })
      const after = (await jobpost.jobStore.getByPostIds([a!.id, b!.id, c!.id])).map((job) => [job.state.priority, job.state.runAt])
      expect(after).toEqual([stateA, stateB, stateC].map((state) => [state!.priority, state!.runAt]))
    })

    it('a delayed job whose time has come (no worker promoted it yet) is due: the reorder takes it and promotes it', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const [a, b] = await seed(type, [{ name: 'a' }, { name: 'b' }])
      // b waits in the delayed index though it is due (nothing promotes it: no worker, no registry).
      // One after the other: on PostgreSQL two calls of one turn run on two connections, in either order.
      const marked = await jobpost.jobStore.change({ postId: b!.id, from: ['pending'], set: { delayed: true } }, Date.now())
      const outcome = await jobpost.jobStore.reorder({ postIds: [b!.id, a!.id], priority: 0, runAts: [Date.now() - 2000, Date.now() - 1000], now: Date.now() })
      expect(marked).not.toBeNull()
      expect(outcome.ok).toBe(true)
      expect((await jobpost.jobStore.getByPostIds([b!.id]))[0]!.state.delayed).toBe(false)
      expect(await runAll(type, 2)).toEqual(['b', 'a'])
    })

    it('reorders 500 jobs (the most one call takes) in one go', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const runAt = new Date(Date.now() - 60_000).toISOString()
      const jobs = await jobpost.pluginHooks('reorder-test').enqueueJobs(Array.from({ length: 500 }, (_, i) => ({ type, name: `m${i}`, runAt })))
      const wanted = [...jobs].reverse()
      const started = performance.now()
      const res = await api(admin).reorder(wanted.map((job) => job.jobId)).expect(200)
      const ms = performance.now() - started
      console.info(`reorder of 500 jobs on ${dialect.name}: ${ms.toFixed(0)} ms`)
      expect(res.body.data).toHaveLength(500)
      const view = (await api(admin).queue(type, '&limit=500').expect(200)).body.data as Job[]
      expect(view.map((job) => job.jobId)).toEqual(wanted.map((job) => job.jobId))
      expect(ms).toBeLessThan(5000)
    })

    it('a reorder racing the worker is all or nothing', async (ctx) => {
      if (!db) return ctx.skip()
      const type = newType()
      const jobs = await seed(
        type,
        Array.from({ length: 30 }, (_, i) => ({ name: `r${i}` })),
      )
      const reversed = [...jobs].reverse().map((job) => job.jobId)
      // The worker wakes for the new processor while the reorder is on its way.
      process(type)
      const res = await api(admin).reorder(reversed)
      await eventually(async () => (await jobpost.jobs.getJobs({ type, status: 'completed', limit: 1 })).total === 30, { timeoutMs: 15_000 })
      if (res.status === 200) {
        // Applied while every listed job was still pending (else it would have been refused): reversed.
        expect(started).toEqual([...jobs].reverse().map((job) => job.name))
      } else {
        expect(res.status).toBe(409)
        // Refused: the original order, untouched.
        expect(started).toEqual(jobs.map((job) => job.name))
      }
    })
  })
}
