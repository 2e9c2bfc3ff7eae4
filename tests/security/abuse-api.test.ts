import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { QuotaExceededError, RateLimitedError } from '../../core/errors.js'
import { startJobpost, userWithRole, type TestUser } from '../support/harness.js'
import { jobCount } from './support/jobs.js'
import { inParallel, tally } from './support/server.js'

type Started = Jobpost & { url: string }

/**
 * Issue 13 through the API of a listening server (and the plugin API of the same process): who
 * may set which job fields, references that must exist, what a subscriber's stats show, unknown
 * routes, the plugins' creation limits, and a plugin flooding the queue while others are served.
 */
describe('fields a subscriber does not control', () => {
  let jobpost: Started
  let admin: TestUser
  let editor: TestUser
  let subscriber: TestUser

  beforeAll(async () => {
    jobpost = await startJobpost()
    ;[admin, editor, subscriber] = await Promise.all([
      userWithRole(jobpost, 'administrator'),
      userWithRole(jobpost, 'editor'),
      userWithRole(jobpost, 'subscriber'),
    ])
  })
  afterAll(() => jobpost.close())

  const post = (user: TestUser, path: string, body: object) =>
    request(jobpost.url).post(path).set('authorization', `Bearer ${user.token}`).send(body)

  it('source (posing as a plugin) and priority above 0 (jumping the queue) → 403 without manage_jobs, nothing created', async () => {
    const before = await jobCount(jobpost)
    for (const user of [subscriber, editor]) {
      for (const extra of [{ source: 'example-job-plugin' }, { source: 'api' }, { priority: 1000 }, { priority: 1 }]) {
        const res = await post(user, '/api/v1/jobs', { name: 'sneaky', type: 't', ...extra })
        expect(res.status, JSON.stringify(extra)).toBe(403)
        expect(res.body.error.code).toBe('FORBIDDEN')
      }
      // A chain too: its source, and a step's priority.
      expect((await post(user, '/api/v1/jobs/chain', { source: 'example-job-plugin', steps: [{ type: 'a' }] })).status).toBe(403)
      expect((await post(user, '/api/v1/jobs/chain', { steps: [{ type: 'a', priority: 500 }] })).status).toBe(403)
    }
    expect(await jobCount(jobpost)).toBe(before)
    // Lower priorities are anyone's; `source` defaults to "api" over REST.
    const own = await post(subscriber, '/api/v1/jobs', { name: 'mine', type: 't', priority: -5 }).expect(201)
    expect(own.body.data).toMatchObject({ priority: -5, source: 'api', createdBy: subscriber.id })
    // Raising one's own job later is refused the same way; lowering it is fine.
    expect((await post(subscriber, `/api/v1/jobs/${own.body.data.jobId}/priority`, { priority: 1000 })).status).toBe(403)
    expect((await post(subscriber, `/api/v1/jobs/${own.body.data.jobId}/priority`, { priority: -10 })).status).toBe(200)
    // An administrator may set both.
    const admins = await post(admin, '/api/v1/jobs', { name: 'ops', type: 't', source: 'example-job-plugin', priority: 1000 }).expect(201)
    expect(admins.body.data).toMatchObject({ source: 'example-job-plugin', priority: 1000 })
  })

  it('plugin API: createdBy of an unknown user and a dangling parentJobId → 400 naming the field, no SQL text, nothing created', async () => {
    const hooks = jobpost.pluginHooks('refs-plugin')
    const before = await jobCount(jobpost)
    const cases: [object, RegExp][] = [
      [{ createdBy: 987654 }, /createdBy: no user has the id 987654/],
      [{ parentJobId: '00000000-0000-4000-8000-000000000000' }, /parentJobId: no job has the id/],
    ]
    for (const [extra, message] of cases) {
      for (const create of [
        () => hooks.createJob({ name: 'x', type: 't', ...extra }),
        () => hooks.enqueueJob({ type: 't', ...extra }),
        () => hooks.enqueueJobs([{ type: 't' }, { type: 't', ...extra }]),
      ]) {
        const error = await create().then(
          () => null,
          (thrown: Error & { code?: string; status?: number }) => thrown,
        )
        expect(error).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 })
        expect(error!.message).toMatch(message)
        expect(error!.message).not.toMatch(/FOREIGN KEY|constraint|SQLITE|insert into/i)
      }
    }
    expect(await jobCount(jobpost)).toBe(before)
    // Existing references are fine.
    const parent = await hooks.enqueueJob({ type: 'parent' })
    const child = await hooks.enqueueJob({ type: 'child', parentJobId: parent.jobId, createdBy: subscriber.id })
    expect(child).toMatchObject({ createdBy: subscriber.id })
  })

  it('stats show instances (host, PID) to manage_jobs only', async () => {
    const stats = (user: TestUser) => request(jobpost.url).get('/api/v1/jobs/stats').set('authorization', `Bearer ${user.token}`).expect(200)
    expect((await stats(admin)).body.data.instances).toEqual(expect.arrayContaining([expect.objectContaining({ pid: expect.any(Number) })]))
    for (const user of [editor, subscriber]) {
      const body = (await stats(user)).body
      expect(body.data).not.toHaveProperty('instances')
      expect(JSON.stringify(body)).not.toContain(String(process.pid))
    }
  })

  it('unknown /api routes: 401 before 404 for anonymous callers, the JSON envelope always (v1, v2, bare /api)', async () => {
    const paths = [
      ['GET', '/api/v1/no-such-route'],
      ['GET', '/api/v1/plugins/example-job-plugin'],
      ['POST', '/api/v1/plugins/some-installed-plugin/run'],
      ['GET', '/api/v1/plugins'],
      ['DELETE', '/api/v1/auth/login'],
      ['GET', '/api/v2/jobs'],
      ['POST', '/api/v2/jobs'],
      ['GET', '/api'],
      ['GET', '/api/'],
      ['GET', '/api/anything/at/all'],
    ] as const
    for (const [method, path] of paths) {
      const call = (token?: string) => {
        const req = request(jobpost.url)[method.toLowerCase() as 'get' | 'post' | 'delete'](path)
        return token ? req.set('authorization', `Bearer ${token}`) : req
      }
      for (const [token, status, code] of [
        [undefined, 401, 'UNAUTHENTICATED'],
        ['not-a-real-token', 401, 'UNAUTHENTICATED'],
        [subscriber.token, 404, 'NOT_FOUND'],
      ] as const) {
        const res = await call(token)
        expect(`${method} ${path} ${token ? 'token' : 'anonymous'} → ${res.status}`).toBe(`${method} ${path} ${token ? 'token' : 'anonymous'} → ${status}`)
        expect(res.headers['content-type']).toMatch(/application\/json/)
        expect(res.body).toEqual({ success: false, error: { code, message: expect.any(String) } })
      }
    }
  })
})

describe('ACTIVE_PLUGINS listing a slug twice', () => {
  it('loads the plugin once (its processors, actions and routes are registered once)', async () => {
    const jobpost = await startJobpost({ activePlugins: ['example-job-plugin', 'example-job-plugin'] }, { listen: false })
    try {
      expect(jobpost.plugins).toEqual({ loaded: ['example-job-plugin'], failed: [] })
    } finally {
      await jobpost.close()
    }
  })
})

describe('plugin creation limits: rate and pending quota per plugin slug, typed errors', () => {
  it('a rate of 100 a minute: 150 concurrent enqueueJob → exactly 100 created, 50 rejected with RateLimitedError (RATE_LIMITED, retryAfterMs)', async () => {
    const jobpost = await startJobpost({ jobLimits: { user: { ratePerMinute: 600, maxPending: 10_000 }, plugin: { ratePerMinute: 100, maxPending: 100_000 } } }, { listen: false })
    try {
      const hooks = jobpost.pluginHooks('busy-plugin')
      // A rate window is a clock minute: start well inside one.
      const left = 60_000 - (Date.now() % 60_000)
      if (left < 5000) await new Promise((resolve) => setTimeout(resolve, left + 50))
      const outcomes = await Promise.allSettled(Array.from({ length: 150 }, (_, i) => hooks.enqueueJob({ type: 'work', data: { i } })))
      const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason)
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(100)
      expect(rejected).toHaveLength(50)
      for (const error of rejected) {
        expect(error).toBeInstanceOf(RateLimitedError)
        expect(error).toMatchObject({ code: 'RATE_LIMITED', status: 429 })
        expect(error.retryAfterMs).toBeGreaterThan(0)
      }
      expect((await jobpost.jobs.getJobs({ source: 'busy-plugin', limit: 1 })).total).toBe(100)
      // A batch is counted whole: 1 more job would pass the limit, so nothing of it is created.
      await expect(hooks.enqueueJobs([{ type: 'work' }])).rejects.toMatchObject({ code: 'RATE_LIMITED' })
      // Keyed by slug: another plugin is not limited by this one.
      await expect(jobpost.pluginHooks('quiet-plugin').enqueueJob({ type: 'work' })).resolves.toMatchObject({ source: 'quiet-plugin' })
    } finally {
      await jobpost.close()
    }
  })

  it('a pending cap of 20: 30 concurrent creates → 20 created, 10 rejected with QuotaExceededError (QUOTA_EXCEEDED)', async () => {
    const jobpost = await startJobpost({ jobLimits: { user: { ratePerMinute: 600, maxPending: 10_000 }, plugin: { ratePerMinute: 0, maxPending: 20 } } }, { listen: false })
    try {
      const hooks = jobpost.pluginHooks('piling-plugin')
      const outcomes = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? hooks.enqueueJob({ type: 'never-processed' }) : hooks.createJob({ name: `tracked ${i}`, type: 'never-processed' }))),
      )
      const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason)
      expect(rejected).toHaveLength(10)
      for (const error of rejected) {
        expect(error).toBeInstanceOf(QuotaExceededError)
        expect(error).toMatchObject({ code: 'QUOTA_EXCEEDED', status: 429 })
      }
      expect((await jobpost.jobs.getJobs({ source: 'piling-plugin', status: 'pending', limit: 1 })).total).toBe(20)
      await expect(hooks.enqueueJobs([{ type: 'a' }, { type: 'b' }])).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' })
    } finally {
      await jobpost.close()
    }
  })
})

describe('REST limits keyed by user id, whatever the forwarding headers say', () => {
  it('20 concurrent creates of one user with a pending cap of 5 → 5 created, 15 × 429 QUOTA_EXCEEDED with Retry-After', async () => {
    const jobpost = await startJobpost({ jobLimits: { user: { ratePerMinute: 600, maxPending: 5 }, plugin: { ratePerMinute: 0, maxPending: 0 } } })
    try {
      const user = await userWithRole(jobpost, 'subscriber')
      const results = await inParallel(20, 20, (i) =>
        request(jobpost.url).post('/api/v1/jobs').set('authorization', `Bearer ${user.token}`).set('x-forwarded-for', `10.0.0.${i}`).send({ name: `q${i}`, type: 'nobody' }),
      )
      expect(tally(results.map((r) => r.status))).toEqual({ 201: 5, 429: 15 })
      expect(results.filter((r) => r.status === 429).every((r) => r.body.error.code === 'QUOTA_EXCEEDED' && Number(r.headers['retry-after']) >= 1)).toBe(true)
      // A chain creates jobs too: refused the same way, not a way around the limits.
      const chain = await request(jobpost.url).post('/api/v1/jobs/chain').set('authorization', `Bearer ${user.token}`).send({ steps: [{ type: 'a' }] })
      expect(chain.status).toBe(429)
      expect(chain.body.error.code).toBe('QUOTA_EXCEEDED')
    } finally {
      await jobpost.close()
    }
  })
})
