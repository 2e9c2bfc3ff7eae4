import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Job, JobAttempt, JobLogLine, ServerMessage } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import type { DatabaseTarget } from '../core/config.js'
import { jobLogsFor, LOG_LINE_CAP, MAX_LINE_BYTES, type JobLogs } from '../core/logs/index.js'
import { connectWs, eventually, freshPostgresDatabase, startJobpost, userWithRole, type TestUser } from './support/harness.js'
import { registerLogProcessors, registerSlowProcessor } from './logs-fixtures/processors.js'

type Started = Jobpost & { url: string }

/** Issue 15 on both dialects: lines, paging, truncation, the cap, visibility, attempts. */
describe.each(['sqlite', 'postgres'] as const)('job logs and attempts (%s)', (dialect) => {
  let jobpost: Started | undefined
  let logs: JobLogs
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let admin: TestUser
  let editor: TestUser
  let subscriber: TestUser

  beforeAll(async () => {
    let database: DatabaseTarget = { dialect: 'sqlite', filename: ':memory:' }
    if (dialect === 'postgres') {
      pg = await freshPostgresDatabase('logs')
      if (!pg) return
      database = { dialect: 'postgres', connectionString: pg.url }
    }
    jobpost = await startJobpost({ database, runWorker: true, workerPollMs: 100 })
    const hooks = jobpost.pluginHooks('logs-test')
    registerLogProcessors(hooks)
    registerSlowProcessor(hooks)
    logs = jobLogsFor(jobpost.jobs)!
    admin = await userWithRole(jobpost, 'administrator')
    editor = await userWithRole(jobpost, 'editor')
    subscriber = await userWithRole(jobpost, 'subscriber')
  }, 60_000)

  afterAll(async () => {
    await jobpost?.close()
    await pg?.drop()
  })

  const get = (path: string, user: TestUser) => request(jobpost!.app).get(`/api/v1${path}`).set('Authorization', `Bearer ${user.token}`)

  async function enqueue(type: string, data: unknown, extra: Record<string, unknown> = {}): Promise<Job> {
    return jobpost!.pluginHooks('logs-test').enqueueJob({ type, data, ...extra })
  }

  async function finished(jobId: string): Promise<Job> {
    return eventually<Job | null>(async () => {
      const job = await jobpost!.jobs.getJob(jobId)
      return job && ['completed', 'failed', 'cancelled', 'completed_with_errors'].includes(job.status) ? job : null
    }, { timeoutMs: 15_000 }) as Promise<Job>
  }

  async function allLines(jobId: string, user = admin): Promise<JobLogLine[]> {
    const lines: JobLogLine[] = []
    let after = 0
    for (;;) {
      const res = await get(`/jobs/${jobId}/logs?after=${after}&limit=1000`, user).expect(200)
      lines.push(...res.body.data)
      if (res.body.data.length < 1000) return lines
      after = res.body.meta.next
    }
  }

  it('stamps each line with seq, time and attempt, in order, and pages by seq', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const job = await enqueue('log-lines', { count: 450 })
    expect((await finished(job.jobId)).status).toBe('completed')
    await logs.flush()

    const first = await get(`/jobs/${job.jobId}/logs?limit=200`, admin).expect(200)
    expect(first.body.data).toHaveLength(200)
    expect(first.body.data.map((line: JobLogLine) => line.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    expect(first.body.meta).toMatchObject({ next: 200, limit: 200, lastSeq: 450, dropped: 0, hasMore: true })
    expect(first.body.data[0]).toEqual({
      seq: 1,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      level: 'info',
      message: 'line 1',
      fields: { i: 1 },
      attempt: 1,
    })
    expect(first.body.data.slice(0, 4).map((line: JobLogLine) => line.level)).toEqual(['info', 'warn', 'error', 'debug'])
    const second = await get(`/jobs/${job.jobId}/logs?after=200&limit=200`, admin).expect(200)
    expect(second.body.data.map((line: JobLogLine) => line.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 201))
    const third = await get(`/jobs/${job.jobId}/logs?after=${second.body.meta.next}`, admin).expect(200)
    expect(third.body.data.map((line: JobLogLine) => line.message)).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i + 401}`))
    expect(third.body.meta).toMatchObject({ next: 450, hasMore: false })
    const past = await get(`/jobs/${job.jobId}/logs?after=450`, admin).expect(200)
    expect(past.body.data).toEqual([])
    expect(past.body.meta.next).toBe(450)
    // Times never go backwards along seq.
    const times = (await allLines(job.jobId)).map((line) => Date.parse(line.at))
    expect(times).toEqual([...times].sort((a, b) => a - b))
  })

  it('documents both routes in the OpenAPI document', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const doc = (await request(jobpost.app).get('/api/v1/openapi.json').expect(200)).body
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/jobs/{jobId}/logs', '/jobs/{jobId}/attempts']))
  })

  it('refuses bad query parameters and job ids with 400, never 500', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const job = await enqueue('log-lines', { count: 1 })
    for (const query of ['limit=0', 'limit=1001', 'limit=abc', 'after=-1', 'after=1.5', 'limit=1&limit=2', 'since=3', `after=${'9'.repeat(30)}`]) {
      const res = await get(`/jobs/${job.jobId}/logs?${query}`, admin)
      expect(res.status, query).toBe(400)
      expect(res.body.error.code).toBe('VALIDATION_FAILED')
    }
    expect((await get(`/jobs/${job.jobId}/attempts?x=1`, admin)).status).toBe(400)
    expect((await get('/jobs/not-a-uuid/logs', admin)).status).toBe(400)
    expect((await get('/jobs/00000000-0000-4000-8000-000000000000/logs', admin)).body.error.code).toBe('JOB_NOT_FOUND')
    expect((await get('/jobs/00000000-0000-4000-8000-000000000000/attempts', admin)).status).toBe(404)
    expect((await request(jobpost.app).get(`/api/v1/jobs/${job.jobId}/logs`)).status).toBe(401)
  })

  it('cuts a line over 4 KB (marked), keeps control characters as text, escapes NUL', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const handle = await jobpost.pluginHooks('logs-test').createJob({ name: 'Cut', type: 'tracked-cut' })
    await handle.start()
    const long = 'x'.repeat(10_000)
    const wide = 'é'.repeat(5000) // 10,000 bytes
    const control = 'red \u001b[31mALERT\u001b[0m\u0007 bell\r\nnext\tline \u0008 <b>html</b>'
    handle.log(long)
    handle.log(wide, { note: 'wide' }, 'warn')
    handle.log(control, { control }, 'error')
    handle.log('nul \u0000 here')
    handle.log('big fields', { blob: 'y'.repeat(8000) })
    handle.log('odd level', undefined, 'fatal' as never)
    await logs.flush()
    await eventually(async () => (await allLines(handle.jobId)).length === 6)
    const lines = await allLines(handle.jobId)
    expect(lines[0]!.message.endsWith('…[cut: 10000 bytes]')).toBe(true)
    expect(Buffer.byteLength(lines[0]!.message)).toBeLessThanOrEqual(MAX_LINE_BYTES)
    expect(lines[0]!.message.startsWith('xxxx')).toBe(true)
    expect(Buffer.byteLength(lines[1]!.message)).toBeLessThanOrEqual(MAX_LINE_BYTES)
    expect(lines[1]!.message).toMatch(/^é+ …\[cut: 10000 bytes\]$/) // never half a character
    expect(lines[1]).toMatchObject({ level: 'warn', fields: { note: 'wide' }, attempt: 1 })
    expect(lines[2]).toMatchObject({ message: control, fields: { control }, level: 'error' })
    expect(lines[3]!.message).toBe('nul \\u0000 here')
    expect(lines[4]!.fields).toMatchObject({ cut: true, bytes: expect.any(Number) })
    expect(lines[5]!.level).toBe('info')
    await handle.complete()
  })

  it(`keeps a job's last ${LOG_LINE_CAP} lines and counts the dropped ones`, async (ctx) => {
    if (!jobpost) return ctx.skip()
    const handle = await jobpost.pluginHooks('logs-test').createJob({ name: 'Chatty', type: 'tracked-cap' })
    await handle.start()
    // One burst (one flush: the oldest 50 are never written), then more (older rows deleted).
    for (let i = 1; i <= LOG_LINE_CAP + 50; i++) handle.log(`line ${i}`)
    await logs.flush()
    await eventually(async () => (await get(`/jobs/${handle.jobId}/logs?limit=1`, admin)).body.meta.lastSeq === LOG_LINE_CAP + 50)
    for (let i = LOG_LINE_CAP + 51; i <= LOG_LINE_CAP + 80; i++) handle.log(`line ${i}`)
    await logs.flush()
    const head = await get(`/jobs/${handle.jobId}/logs?limit=1`, admin).expect(200)
    expect(head.body.meta).toMatchObject({ lastSeq: LOG_LINE_CAP + 80, dropped: 80 })
    expect(head.body.data[0]).toMatchObject({ seq: 81, message: 'line 81' })
    const lines = await allLines(handle.jobId)
    expect(lines).toHaveLength(LOG_LINE_CAP)
    expect(lines.at(-1)).toMatchObject({ seq: LOG_LINE_CAP + 80, message: `line ${LOG_LINE_CAP + 80}` })
    const rows = await jobpost.db.knex('job_logs').where({ post_id: (await jobpost.jobs.getJobRecord(handle.jobId))!.id }).count({ n: '*' })
    expect(Number(rows[0]!.n)).toBe(LOG_LINE_CAP)
    await handle.complete()
  }, 30_000)

  it('accounts for every line of a burst larger than the cap (kept + dropped = written)', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const handle = await jobpost.pluginHooks('logs-test').createJob({ name: 'Burst', type: 'tracked-burst' })
    await handle.start()
    // 25,000 lines in one turn: this process holds at most 2 × 10,000 waiting lines of a job.
    const total = 2.5 * LOG_LINE_CAP
    for (let i = 1; i <= total; i++) handle.log(`line ${i}`)
    await logs.flush()
    const head = await get(`/jobs/${handle.jobId}/logs?limit=1`, admin).expect(200)
    expect(head.body.meta.lastSeq).toBeLessThanOrEqual(total)
    const lines = await allLines(handle.jobId)
    expect(lines).toHaveLength(LOG_LINE_CAP)
    expect(lines.at(-1)!.message).toBe(`line ${total}`)
    expect(lines[0]!.message).toBe(`line ${total - LOG_LINE_CAP + 1}`)
    // Seqs stay dense; what is gone is counted.
    expect(lines.map((line) => line.seq)).toEqual(Array.from({ length: LOG_LINE_CAP }, (_, i) => head.body.meta.lastSeq - LOG_LINE_CAP + 1 + i))
    expect(LOG_LINE_CAP + head.body.meta.dropped).toBe(total)
    await handle.complete()
  }, 30_000)

  it('shows logs and attempts exactly to those who may see the job (REST)', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const post = (user: TestUser) =>
      request(jobpost!.app).post('/api/v1/jobs').set('Authorization', `Bearer ${user.token}`).send({ name: 'Mine', type: 'tracked-visibility' }).expect(201)
    const adminJob = (await post(admin)).body.data as Job
    const ownJob = (await post(subscriber)).body.data as Job
    logs.logByJobId(adminJob.jobId, { message: 'secret' })
    logs.logByJobId(ownJob.jobId, { message: 'mine' })
    await logs.flush()
    for (const path of ['logs', 'attempts']) {
      const hidden = await get(`/jobs/${adminJob.jobId}/${path}`, subscriber)
      expect(hidden.status).toBe(404)
      expect(hidden.body).toEqual({ success: false, error: { code: 'JOB_NOT_FOUND', message: expect.any(String) } })
      expect((await get(`/jobs/${ownJob.jobId}/${path}`, subscriber)).status).toBe(200)
      expect((await get(`/jobs/${adminJob.jobId}/${path}`, editor)).status).toBe(200)
    }
    await eventually(async () => (await get(`/jobs/${ownJob.jobId}/logs`, subscriber)).body.data.length === 1)
    expect((await get(`/jobs/${ownJob.jobId}/logs`, subscriber)).body.data[0].message).toBe('mine')
    expect((await get(`/jobs/${adminJob.jobId}/logs`, editor)).body.data[0].message).toBe('secret')
  })

  it('streams new lines over WebSocket only to clients that may see the job, batched, ended with the socket', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const hooks = jobpost.pluginHooks('logs-test')
    const adminHandle = await hooks.createJob({ name: 'Admin’s', type: 'tracked-ws' })
    await adminHandle.start()
    const own = (await request(jobpost.app).post('/api/v1/jobs').set('Authorization', `Bearer ${subscriber.token}`).send({ name: 'Own', type: 'tracked-ws' }).expect(201))
      .body.data as Job
    adminHandle.log('before subscribing')
    await logs.flush()

    const ws = await connectWs(jobpost, { token: subscriber.token })
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: adminHandle.jobId }))
    const refused = await ws.next((m) => m.type === 'error')
    expect(refused).toMatchObject({ type: 'error', code: 'NOT_FOUND', jobId: adminHandle.jobId })
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: '00000000-0000-4000-8000-000000000000' }))
    await ws.next((m) => m.type === 'error' && (m as { jobId?: string }).jobId === '00000000-0000-4000-8000-000000000000' && (m as { code?: string }).code === 'NOT_FOUND')
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: 42 }))
    await ws.next((m) => m.type === 'error' && (m as { code?: string }).code === 'VALIDATION_FAILED')

    const adminWs = await connectWs(jobpost, { token: admin.token })
    adminWs.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: adminHandle.jobId }))
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: own.jobId }))
    await eventually(() => logs.fanout.subscriptionCount === 2)
    adminHandle.log('live one', { n: 1 })
    logs.logByJobId(own.jobId, { message: 'own line' })
    const adminMessage = (await adminWs.next((m) => m.type === 'job_log')) as Extract<ServerMessage, { type: 'job_log' }>
    expect(adminMessage.jobId).toBe(adminHandle.jobId)
    // Only lines after the subscription: not the one logged before it.
    expect(adminMessage.lines.map((line) => [line.seq, line.message])).toEqual([[2, 'live one']])
    const ownMessage = (await ws.next((m) => m.type === 'job_log')) as Extract<ServerMessage, { type: 'job_log' }>
    expect(ownMessage).toMatchObject({ jobId: own.jobId, lines: [{ seq: 1, message: 'own line', level: 'info' }] })
    expect(ws.messages.filter((m) => m.type === 'job_log' && m.jobId === adminHandle.jobId)).toEqual([])

    // At most 10 messages a second per subscription; every line arrives once, in order.
    const received: { at: number; lines: JobLogLine[] }[] = []
    adminWs.ws.on('message', (raw) => {
      const message = JSON.parse(raw.toString()) as ServerMessage
      if (message.type === 'job_log') received.push({ at: Date.now(), lines: message.lines })
    })
    const started = Date.now()
    for (let i = 0; i < 60; i++) {
      adminHandle.log(`burst ${i}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await eventually(() => received.flatMap((m) => m.lines).length === 60, { timeoutMs: 5000 })
    const seqs = received.flatMap((m) => m.lines.map((line) => line.seq))
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => i + 3))
    const elapsed = Math.max(1, received.at(-1)!.at - started)
    expect(received.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1)
    for (let i = 1; i < received.length; i++) expect(received[i]!.at - received[i - 1]!.at).toBeGreaterThanOrEqual(80)

    // Unsubscribed: nothing more for that job.
    adminWs.ws.send(JSON.stringify({ type: 'unsubscribe_logs', jobId: adminHandle.jobId }))
    await eventually(() => logs.fanout.subscriptionCount === 1)
    // The socket ends its subscriptions.
    await ws.close()
    await eventually(() => logs.fanout.subscriptionCount === 0)
    await adminWs.close()
    await adminHandle.complete()
  }, 20_000)

  it('bounds the subscriptions of one socket', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const hooks = jobpost.pluginHooks('logs-test')
    const handles = await Promise.all(Array.from({ length: 21 }, (_, i) => hooks.createJob({ name: `Many ${i}`, type: 'tracked-many' })))
    const ws = await connectWs(jobpost, { token: admin.token })
    for (const handle of handles.slice(0, 20)) ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: handle.jobId }))
    await eventually(() => logs.fanout.subscriptionCount === 20)
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: handles[20]!.jobId }))
    expect(await ws.next((m) => m.type === 'error')).toMatchObject({ code: 'RATE_LIMITED', jobId: handles[20]!.jobId })
    // Subscribing twice to one job is one subscription.
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: handles[0]!.jobId }))
    ws.ws.send(JSON.stringify({ type: 'ping' }))
    await ws.next((m) => m.type === 'pong')
    expect(logs.fanout.subscriptionCount).toBe(20)
    await ws.close()
    await eventually(() => logs.fanout.subscriptionCount === 0)
  })

  it('records attempts: a failure then a retry, a timeout, a cancel, a pause', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const job = await enqueue('fail-once', {})
    expect((await finished(job.jobId)).status).toBe('completed')
    await logs.flush()
    const attempts = (await get(`/jobs/${job.jobId}/attempts`, admin).expect(200)).body.data as JobAttempt[]
    expect(attempts).toHaveLength(2)
    expect(attempts[0]).toMatchObject({ attempt: 1, instance: jobpost.runtime.workerId, outcome: 'failed' })
    expect(attempts[0]!.error).toMatchObject({ message: 'first attempt fails', stack: expect.stringContaining('first attempt fails') })
    expect((attempts[0]!.error as { stack: string }).stack.split('\n').length).toBeLessThanOrEqual(14)
    expect(attempts[1]).toMatchObject({ attempt: 2, outcome: 'completed', error: null })
    for (const attempt of attempts) {
      expect(attempt.durationMs).toBe(Date.parse(attempt.finishedAt!) - Date.parse(attempt.startedAt))
      expect(attempt.durationMs).toBeGreaterThanOrEqual(0)
    }
    const lines = await allLines(job.jobId)
    expect(lines.map((line) => [line.attempt, line.message])).toEqual([
      [1, 'attempt 1 begins'],
      [2, 'attempt 2 begins'],
    ])

    const timed = await enqueue('slow', {}, { timeout: 100 })
    expect((await finished(timed.jobId)).status).toBe('failed')
    await logs.flush()
    expect((await get(`/jobs/${timed.jobId}/attempts`, admin)).body.data).toMatchObject([{ attempt: 1, outcome: 'timeout', error: { message: expect.stringContaining('Timed out') } }])

    const cancelled = await enqueue('slow', {})
    await eventually(async () => (await jobpost!.jobs.getJob(cancelled.jobId))?.status === 'running')
    await eventually(async () => (await logs.attempts((await jobpost!.jobs.getJobRecord(cancelled.jobId))!.id)).length === 1)
    await request(jobpost.app).post(`/api/v1/jobs/${cancelled.jobId}/cancel`).set('Authorization', `Bearer ${admin.token}`).send({}).expect(200)
    await eventually(async () => (await get(`/jobs/${cancelled.jobId}/attempts`, admin)).body.data[0]?.outcome === 'cancelled')

    // A pause aborts the running attempt (not counted); resumed, the job runs attempt 1 again.
    const paused = await enqueue('slow', {})
    await eventually(async () => (await jobpost!.jobs.getJob(paused.jobId))?.status === 'running')
    const control = (action: string) =>
      request(jobpost!.app).post(`/api/v1/jobs/${paused.jobId}/${action}`).set('Authorization', `Bearer ${admin.token}`).send({}).expect(200)
    await control('pause')
    await eventually(async () => (await get(`/jobs/${paused.jobId}/attempts`, admin)).body.data[0]?.outcome === 'paused')
    await control('resume')
    await eventually(async () => (await jobpost!.jobs.getJob(paused.jobId))?.status === 'running')
    await control('cancel')
    await eventually(async () => (await get(`/jobs/${paused.jobId}/attempts`, admin)).body.data[1]?.outcome === 'cancelled')
    expect((await get(`/jobs/${paused.jobId}/attempts`, admin)).body.data).toMatchObject([
      { attempt: 1, outcome: 'paused' },
      { attempt: 1, outcome: 'cancelled' },
    ])
  }, 30_000)

  it('records a tracked job’s attempt from start to its end', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const handle = await jobpost.pluginHooks('logs-test').createJob({ name: 'Tracked', type: 'tracked-attempt' })
    await handle.start()
    handle.log('working')
    await handle.fail('it broke')
    await logs.flush()
    const attempts = (await get(`/jobs/${handle.jobId}/attempts`, admin)).body.data as JobAttempt[]
    expect(attempts).toMatchObject([{ attempt: 1, outcome: 'failed', error: { message: 'it broke' } }])
    expect((await allLines(handle.jobId)).map((line) => [line.attempt, line.message])).toEqual([[1, 'working']])
  })

  it('deletes lines and attempts with their job (and so by retention)', async (ctx) => {
    if (!jobpost) return ctx.skip()
    const job = await enqueue('log-lines', { count: 5 })
    await finished(job.jobId)
    await logs.flush()
    const postId = (await jobpost.jobs.getJobRecord(job.jobId))!.id
    const count = async (table: string) => Number((await jobpost!.db.knex(table).where({ post_id: postId }).count({ n: '*' }))[0]!.n)
    expect(await count('job_logs')).toBe(5)
    expect(await count('job_attempts')).toBe(1)
    await request(jobpost.app).delete(`/api/v1/jobs/${job.jobId}`).set('Authorization', `Bearer ${admin.token}`).expect(200)
    expect(await count('job_logs')).toBe(0)
    expect(await count('job_attempts')).toBe(0)
    expect(await count('job_log_state')).toBe(0)
    // Retention deletes old finished jobs, and their lines with them.
    const old = await enqueue('log-lines', { count: 3 })
    await finished(old.jobId)
    await logs.flush()
    const oldPostId = (await jobpost.jobs.getJobRecord(old.jobId))!.id
    await jobpost.db.knex('job_state').where({ post_id: oldPostId }).update({ completed_at: Date.now() - 40 * 86_400_000 })
    expect(Number((await jobpost.db.knex('job_logs').where({ post_id: oldPostId }).count({ n: '*' }))[0]!.n)).toBe(3)
    expect(await jobpost.jobs.cleanupOldJobs(30)).toBeGreaterThanOrEqual(1)
    expect(Number((await jobpost.db.knex('job_logs').where({ post_id: oldPostId }).count({ n: '*' }))[0]!.n)).toBe(0)
    expect(Number((await jobpost.db.knex('job_attempts').where({ post_id: oldPostId }).count({ n: '*' }))[0]!.n)).toBe(0)
    // Lines of a job deleted before they were written are dropped; the others still land.
    const other = await jobpost.pluginHooks('logs-test').createJob({ name: 'Survivor', type: 'tracked-gone' })
    const doomed = await jobpost.pluginHooks('logs-test').createJob({ name: 'Doomed', type: 'tracked-gone' })
    const doomedRecord = (await jobpost.jobs.getJobRecord(doomed.jobId))!
    logs.log({ jobId: doomed.jobId, postId: doomedRecord.id, attempt: 0, message: 'too late' })
    logs.log({ jobId: other.jobId, postId: (await jobpost.jobs.getJobRecord(other.jobId))!.id, attempt: 0, message: 'kept' })
    await doomed.cancel()
    await jobpost.jobs.deleteJob(doomed.jobId)
    await logs.flush()
    expect((await allLines(other.jobId)).map((line) => line.message)).toEqual(['kept'])
  })
})
