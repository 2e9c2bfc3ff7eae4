import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../core/clock.js'
import type { DatabaseTarget } from '../core/config.js'
import type { Job } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { eventually, freshPostgresDatabase, startJobpost, userWithRole, type TestUser } from './support/harness.js'

/**
 * The admin's routes of API.md beyond the first wave: sort and keyset paging of the list, per-minute
 * series, run-now, bulk actions as a job, and the notification feed with server-side dismissals.
 */
function adminRoutes(label: string, target: () => Promise<{ database?: DatabaseTarget; drop(): Promise<void> } | null>) {
  describe(`admin routes on ${label}`, () => {
    let jobpost: Jobpost
    let admin: TestUser
    let alice: TestUser
    let bob: TestUser
    let drop = async () => {}
    let skipped = false
    const clock = new ManualClock(Date.parse('2026-05-01T10:00:00.000Z'))

    beforeAll(async () => {
      const db = await target()
      if (!db) return void (skipped = true)
      drop = db.drop
      jobpost = await startJobpost(db.database ? { database: db.database } : {}, { clock })
      ;[admin, alice, bob] = await Promise.all([
        userWithRole(jobpost, 'administrator'),
        userWithRole(jobpost, 'subscriber'),
        userWithRole(jobpost, 'subscriber'),
      ])
    })
    afterAll(async () => {
      await jobpost?.close()
      await drop()
    })

    const as = (user: TestUser) => ({
      get: (path: string) => request(jobpost.app).get(path).set('authorization', `Bearer ${user.token}`),
      post: (path: string, body: object = {}) => request(jobpost.app).post(path).set('authorization', `Bearer ${user.token}`).send(body),
    })
    const create = async (user: TestUser, body: object) => (await as(user).post('/api/v1/jobs', { type: 'report', ...body }).expect(201)).body.data as Job

    it('sorts, and pages by cursor without gaps or repeats as rows keep arriving', async (ctx) => {
      if (skipped) return ctx.skip()
      const created: Job[] = []
      for (let i = 0; i < 25; i++) {
        clock.advance(1000)
        created.push(await create(alice, { name: `sorted ${i}`, priority: 0 }))
      }
      const seen: string[] = []
      let cursor: string | undefined
      do {
        const res = await as(alice).get(`/api/v1/jobs?limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`).expect(200)
        seen.push(...res.body.data.map((job: Job) => job.name))
        expect(res.body.meta.total).toBe(seen.length > 10 ? 26 : 25)
        cursor = res.body.meta.nextCursor
        // A new job arriving between pages does not shift the next page.
        if (seen.length === 10) await create(alice, { name: 'late arrival' })
      } while (cursor)
      expect(seen.filter((name) => name.startsWith('sorted'))).toEqual(created.map((job) => job.name).reverse())
      expect(new Set(seen).size).toBe(seen.length)
      const oldest = await as(alice).get('/api/v1/jobs?sort=createdAt&limit=3').expect(200)
      expect(oldest.body.data.map((job: Job) => job.name)).toEqual(['sorted 0', 'sorted 1', 'sorted 2'])
      await as(alice).get('/api/v1/jobs?sort=name').expect(400)
      await as(alice).get('/api/v1/jobs?cursor=garbage').expect(400)
      await as(alice).get(`/api/v1/jobs?cursor=${encodeURIComponent(oldest.body.meta.nextCursor)}`).expect(400) // made for another sort
      await as(alice).get('/api/v1/jobs?offset=10&cursor=x').expect(400)
    })

    it('counts created, completed and failed per minute, oldest first, for the caller’s own jobs when isolated', async (ctx) => {
      if (skipped) return ctx.skip()
      const hooks = jobpost.pluginHooks('series-plugin')
      const ok = await hooks.createJob({ name: 'ok', type: 'series' })
      const bad = await hooks.createJob({ name: 'bad', type: 'series' })
      await ok.start(), await ok.complete()
      await bad.start(), await bad.fail('x')
      await jobpost.jobStore.maintain()
      const res = await as(admin).get('/api/v1/jobs/stats/series?minutes=5').expect(200)
      expect(res.body.data).toHaveLength(5)
      const last = res.body.data[4]
      expect(last.minute).toBe(new Date(Math.floor(clock.now() / 60_000) * 60_000).toISOString())
      expect(last).toMatchObject({ completed: 1, failed: 1 })
      expect(last.created).toBeGreaterThanOrEqual(2)
      const own = await as(bob).get('/api/v1/jobs/stats/series?minutes=5').expect(200)
      expect(own.body.data.every((point: { created: number }) => point.created === 0)).toBe(true)
      await as(admin).get('/api/v1/jobs/stats/series?minutes=0').expect(400)
      await as(admin).get('/api/v1/jobs/stats/series?minutes=1441').expect(400)
    })

    it('run-now makes a delayed job due at once; 409 for a job that is not pending', async (ctx) => {
      if (skipped) return ctx.skip()
      const later = new Date(clock.now() + 3600_000).toISOString()
      const job = await create(alice, { name: 'delayed', runAt: later })
      expect(job.runAt).toBe(later)
      const res = await as(alice).post(`/api/v1/jobs/${job.jobId}/run-now`).expect(200)
      expect(Date.parse(res.body.data.runAt)).toBeLessThanOrEqual(clock.now())
      await as(bob).post(`/api/v1/jobs/${job.jobId}/run-now`).expect(404)
      await as(alice).post(`/api/v1/jobs/${job.jobId}/cancel`).expect(200)
      const refused = await as(alice).post(`/api/v1/jobs/${job.jobId}/run-now`).expect(409)
      expect(refused.body.error.code).toBe('ILLEGAL_TRANSITION')
    })

    it('bulk: cancels every matching job the caller may touch through a bulk_action job with its outcome', async (ctx) => {
      if (skipped) return ctx.skip()
      jobpost.runtime.start()
      const mine = await Promise.all([1, 2, 3].map((n) => create(bob, { name: `bulk mine ${n}`, type: 'bulk-target' })))
      const others = await create(alice, { name: 'bulk not mine', type: 'bulk-target' })
      const res = await as(bob).post('/api/v1/jobs/bulk', { action: 'cancel', filter: { type: 'bulk-target' } }).expect(202)
      const bulkJobId = res.body.data.bulkJobId as string
      const done = await eventually(async () => {
        const job = (await as(bob).get(`/api/v1/jobs/${bulkJobId}`).expect(200)).body.data as Job
        return job.status === 'completed' ? job : null
      }, { timeoutMs: 10_000 })
      expect(done!.result).toEqual({ matched: 3, changed: 3, skipped: 0 })
      for (const job of mine) expect((await as(bob).get(`/api/v1/jobs/${job.jobId}`)).body.data.status).toBe('cancelled')
      expect((await as(alice).get(`/api/v1/jobs/${others.jobId}`)).body.data.status).toBe('pending')
      // Listed ids: another user's job is skipped, not touched. (A processor for the type now, so
      // that a retry would run them: a tracked job no processor runs is NOT_RETRYABLE, issue 12.)
      jobpost.processors.register('bulk-target', async () => 'ran')
      const listed = await as(bob).post('/api/v1/jobs/bulk', { action: 'retry', jobIds: [...mine.map((job) => job.jobId), others.jobId] }).expect(202)
      const retried = await eventually(async () => {
        const job = (await as(bob).get(`/api/v1/jobs/${listed.body.data.bulkJobId}`)).body.data as Job
        return job.status === 'completed' ? job : null
      }, { timeoutMs: 10_000 })
      expect(retried!.result).toEqual({ matched: 4, changed: 3, skipped: 1 })
      await as(bob).post('/api/v1/jobs/bulk', { action: 'explode', jobIds: [others.jobId] }).expect(400)
      await as(bob).post('/api/v1/jobs/bulk', { action: 'cancel' }).expect(400)
    })

    it('notifications: active and recently finished jobs that notify, minus dismissals, per user', async (ctx) => {
      if (skipped) return ctx.skip()
      const hooks = jobpost.pluginHooks('feed-plugin')
      const running = await create(alice, { name: 'feed running' })
      const quiet = await create(alice, { name: 'feed quiet', showNotification: false })
      const failed = await create(alice, { name: 'feed failed' })
      await jobpost.jobs.start(failed.jobId)
      await jobpost.jobs.fail(failed.jobId, 'broke')
      const done = await create(alice, { name: 'feed done' })
      await jobpost.jobs.start(done.jobId)
      await jobpost.jobs.complete(done.jobId)
      const names = async (user: TestUser) => ((await as(user).get('/api/v1/notifications').expect(200)).body.data as Job[]).map((job) => job.name)
      expect(await names(alice)).toEqual(expect.arrayContaining(['feed running', 'feed failed', 'feed done']))
      expect(await names(alice)).not.toContain('feed quiet')
      expect(await names(bob)).not.toContain('feed running')
      // Completed jobs leave 5 s after they complete; failed ones stay until dismissed (7 days).
      clock.advance(6000)
      expect(await names(alice)).not.toContain('feed done')
      expect(await names(alice)).toContain('feed failed')
      await as(alice).post(`/api/v1/notifications/${failed.jobId}/dismiss`).expect(200)
      expect(await names(alice)).not.toContain('feed failed')
      // Dismissal is per user: the administrator still sees it.
      expect(await names(admin)).toContain('feed failed')
      await as(bob).post(`/api/v1/notifications/${running.jobId}/dismiss`).expect(404)
      const other = await hooks.createJob({ name: 'feed plugin failed', type: 'feed' })
      await other.start(), await other.fail('x')
      expect(await names(admin)).toContain('feed plugin failed')
      await as(admin).post('/api/v1/notifications/dismiss-finished').expect(200)
      const after = await names(admin)
      expect(after).not.toContain('feed plugin failed')
      expect(after).toContain('feed running')
      // A week on (with a fresh login: tokens last a week too), failed jobs have left the feed.
      clock.advance(8 * 24 * 3600_000)
      const later = await userWithRole(jobpost, 'administrator')
      expect(await names(later)).not.toContain('feed failed')
      expect(await names(later)).toContain('feed running')
      void quiet
    })
  })
}

adminRoutes('SQLite', async () => ({ drop: async () => {} }))
adminRoutes('PostgreSQL', async () => {
  const database = await freshPostgresDatabase('admin_routes')
  return database && { database: { dialect: 'postgres', connectionString: database.url }, drop: database.drop }
})
