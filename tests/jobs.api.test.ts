import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../core/createJobpost.js'
import { startJobpost, userWithRole, type TestUser } from './support/harness.js'

describe('JobsController (/api/v1/jobs)', () => {
  let jobpost: Jobpost
  let admin: TestUser
  let editor: TestUser
  let alice: TestUser
  let bob: TestUser

  beforeAll(async () => {
    jobpost = await startJobpost()
    ;[admin, editor, alice, bob] = await Promise.all([
      userWithRole(jobpost, 'administrator'),
      userWithRole(jobpost, 'editor'),
      userWithRole(jobpost, 'subscriber'),
      userWithRole(jobpost, 'subscriber'),
    ])
  })
  afterAll(() => jobpost.close())

  const as = (user: TestUser) => ({
    get: (path: string) => request(jobpost.app).get(path).set('authorization', `Bearer ${user.token}`),
    post: (path: string, body?: object) => {
      const req = request(jobpost.app).post(path).set('authorization', `Bearer ${user.token}`)
      return body ? req.send(body) : req
    },
    delete: (path: string) => request(jobpost.app).delete(path).set('authorization', `Bearer ${user.token}`),
  })

  it('shows a job created by a plugin in GET /api/v1/jobs with every field of the contract', async () => {
    const hooks = jobpost.pluginHooks('my-plugin')
    const job = await hooks.createJob({
      name: 'Import Products',
      type: 'import',
      description: 'Importing',
      metadata: { apiUrl: 'x' },
      iconSvg: '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0h1v1z"/></svg>',
      timeout: 300000,
    })
    await job.start()
    await job.updateProgress(45)
    const res = await as(admin).get('/api/v1/jobs?type=import').expect(200)
    expect(res.body.success).toBe(true)
    expect(res.body.meta).toEqual({ total: 1, limit: 100, offset: 0 })
    const listed = res.body.data[0]
    expect(Object.keys(listed).sort()).toEqual(
      ['attempts', 'completedAt', 'createdAt', 'createdBy', 'description', 'errorMessage', 'iconSvg', 'id', 'jobId', 'maxAttempts', 'metadata', 'name', 'parentJobId', 'pausable', 'priority', 'progress', 'result', 'retryable', 'runAt', 'showNotification', 'source', 'startedAt', 'status', 'timeout', 'type', 'updatedAt'].sort(),
    )
    expect(listed).toMatchObject({ jobId: job.jobId, name: 'Import Products', status: 'running', progress: 45, source: 'my-plugin', timeout: 300000, metadata: { apiUrl: 'x' } })
    expect(listed.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    // The single job adds its payload (`data`; null for a tracked job without one).
    const one = await as(admin).get(`/api/v1/jobs/${job.jobId}`).expect(200)
    expect(one.body.data).toEqual({ ...listed, data: null })
    const queued = await jobpost.pluginHooks('my-plugin').enqueueJob({ type: 'send', data: { to: 'a@example.com' } })
    expect((await as(admin).get(`/api/v1/jobs/${queued.jobId}`).expect(200)).body.data.data).toEqual({ to: 'a@example.com' })
    await as(bob).get(`/api/v1/jobs/${queued.jobId}`).expect(404)
  })

  it('creates jobs over REST (201, pending, createdBy) and validates strictly', async () => {
    const res = await as(alice).post('/api/v1/jobs', { name: 'Export Users', type: 'export', description: 'CSV', priority: -5, data: { x: 1 } }).expect(201)
    expect(res.body.data).toMatchObject({ name: 'Export Users', status: 'pending', createdBy: alice.id, priority: -5, maxAttempts: 1, source: 'api' })
    await as(alice).post('/api/v1/jobs', { name: '', type: 'export' }).expect(400)
    await as(alice).post('/api/v1/jobs', { name: 'x', type: 'has space' }).expect(400)
    await as(alice).post('/api/v1/jobs', { name: 'x', type: 't', priority: 1.5 }).expect(400)
    await as(alice).post('/api/v1/jobs', { name: 'x', type: 't', runAt: 'tomorrow' }).expect(400)
  })

  it('filters by one or many statuses (repeated or comma-separated) and validates query params', async () => {
    const hooks = jobpost.pluginHooks('filters')
    for (const status of ['pending', 'running', 'completed', 'failed']) {
      const job = await hooks.createJob({ name: `f-${status}`, type: 'filter-test', createdBy: admin.id })
      if (status !== 'pending') await job.start()
      if (status === 'completed') await job.complete()
      if (status === 'failed') await job.fail('no')
    }
    const comma = await as(admin).get('/api/v1/jobs?type=filter-test&status=completed,failed').expect(200)
    expect(comma.body.meta.total).toBe(2)
    const repeated = await as(admin).get('/api/v1/jobs?type=filter-test&status=pending&status=running').expect(200)
    expect(repeated.body.data.map((j: { status: string }) => j.status).sort()).toEqual(['pending', 'running'])
    for (const bad of ['status=bogus', 'limit=0', 'limit=501', 'limit=1e9', 'offset=-1', 'limit=1&limit=2', 'type=a&type=b', 'unknown=1']) {
      const res = await as(admin).get(`/api/v1/jobs?${bad}`)
      expect(res.status, bad).toBe(400)
      expect(res.body.error.code, bad).toBe('VALIDATION_FAILED')
    }
  })

  it('shows users without read_jobs only their own jobs, and 404s the rest', async () => {
    const mine = await as(alice).post('/api/v1/jobs', { name: 'alice job', type: 'private' }).expect(201)
    const bobs = await as(bob).post('/api/v1/jobs', { name: 'bob job', type: 'private' }).expect(201)
    const aliceList = await as(alice).get('/api/v1/jobs?type=private').expect(200)
    expect(aliceList.body.data.map((j: { name: string }) => j.name)).toEqual(['alice job'])
    expect(aliceList.body.meta.total).toBe(1)
    const hidden = await as(alice).get(`/api/v1/jobs/${bobs.body.data.jobId}`).expect(404)
    expect(hidden.body.error.code).toBe('JOB_NOT_FOUND')
    await as(alice).post(`/api/v1/jobs/${bobs.body.data.jobId}/cancel`).expect(404)
    // editors read everything but only control their own
    const editorList = await as(editor).get('/api/v1/jobs?type=private').expect(200)
    expect(editorList.body.meta.total).toBe(2)
    await as(editor).post(`/api/v1/jobs/${mine.body.data.jobId}/cancel`).expect(403)
    const stats = await as(alice).get('/api/v1/jobs/stats').expect(200)
    expect(stats.body.data.total).toBeLessThan((await as(admin).get('/api/v1/jobs/stats')).body.data.total)
    await as(alice).post(`/api/v1/jobs/${mine.body.data.jobId}/cancel`).expect(200)
  })

  it('changes state with cancel, pause, resume and retry; illegal changes are 409', async () => {
    // A queued job (its processor is registered; the runtime does not run here). A tracked job
    // without onPause or a processor is NOT_PAUSABLE / NOT_RETRYABLE: tests/runtime.lifecycle.test.ts.
    jobpost.processors.register('ctl', async () => 'ok')
    const created = await as(admin).post('/api/v1/jobs', { name: 'controllable', type: 'ctl' }).expect(201)
    const id = created.body.data.jobId
    expect((await as(admin).post(`/api/v1/jobs/${id}/pause`).expect(200)).body.data.status).toBe('paused')
    expect((await as(admin).post(`/api/v1/jobs/${id}/resume`).expect(200)).body.data.status).toBe('pending')
    const illegal = await as(admin).post(`/api/v1/jobs/${id}/retry`).expect(409)
    expect(illegal.body.error).toEqual({ code: 'ILLEGAL_TRANSITION', message: 'Cannot retry a job that is pending.' })
    await as(admin).delete(`/api/v1/jobs/${id}`).expect(409)
    expect((await as(admin).post(`/api/v1/jobs/${id}/cancel`).expect(200)).body.data.status).toBe('cancelled')
    await as(admin).post(`/api/v1/jobs/${id}/cancel`).expect(409)
    await as(admin).post(`/api/v1/jobs/${id}/pause`).expect(409)
    expect((await as(admin).post(`/api/v1/jobs/${id}/retry`).expect(200)).body.data).toMatchObject({ status: 'pending', attempts: 0 })
    await as(admin).post(`/api/v1/jobs/${id}/cancel`, { extra: 1 }).expect(400)
  })

  it('deletes a finished job (delete_jobs) and 404s unknown ids; rejects ids that are not UUIDs', async () => {
    const created = await as(admin).post('/api/v1/jobs', { name: 'to delete', type: 'del' }).expect(201)
    const id = created.body.data.jobId
    await as(admin).post(`/api/v1/jobs/${id}/cancel`).expect(200)
    await as(editor).delete(`/api/v1/jobs/${id}`).expect(403)
    await as(admin).delete(`/api/v1/jobs/${id}`).expect(200)
    await as(admin).get(`/api/v1/jobs/${id}`).expect(404)
    await as(admin).get('/api/v1/jobs/1%20OR%201=1').expect(400)
    await as(admin).get('/api/v1/jobs/00000000-0000-4000-8000-000000000000').expect(404)
  })

  it('validates daysOld for cleanup', async () => {
    for (const bad of ['0', '-1', 'abc', 'Infinity', '3651', '1.5', '']) {
      const res = await as(admin).delete(`/api/v1/jobs/cleanup?daysOld=${bad}`)
      expect(res.status, bad).toBe(400)
    }
    await as(admin).delete('/api/v1/jobs/cleanup').expect(400)
    const ok = await as(admin).delete('/api/v1/jobs/cleanup?daysOld=30').expect(200)
    expect(ok.body.data).toEqual({ deleted: 0 })
  })

  it('exports a job as JSON or CSV download', async () => {
    const created = await as(admin).post('/api/v1/jobs', { name: 'export me', type: 'exp' }).expect(201)
    const res = await as(admin).get(`/api/v1/jobs/${created.body.data.jobId}/export?format=json`).expect(200)
    expect(res.headers['content-disposition']).toMatch(/attachment; filename="job-.*\.json"/)
    await as(admin).get(`/api/v1/jobs/${created.body.data.jobId}/export?format=xml`).expect(400)
  })

  it('serves an OpenAPI document of the whole API', async () => {
    const res = await request(jobpost.app).get('/api/v1/openapi.json').expect(200)
    expect(res.body.openapi).toBe('3.1.0')
    for (const path of ['/auth/login', '/jobs', '/jobs/stats', '/jobs/cleanup', '/jobs/{jobId}', '/jobs/{jobId}/cancel', '/jobs/{jobId}/export']) {
      expect(res.body.paths[path], path).toBeDefined()
    }
    expect(res.body.components.schemas.CreateJob.additionalProperties).toBe(false)
  })
})
