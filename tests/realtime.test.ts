import type { AddressInfo } from 'node:net'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Job, ServerMessage } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { connectWs, PASSWORD, startJobpost, upgradeStatus, userWithRole, type TestUser } from './support/harness.js'

const isUpdate = (jobId: string, pred: (job: Job) => boolean = () => true) => (m: ServerMessage) =>
  m.type === 'job_update' && m.job.jobId === jobId && pred(m.job)

describe('WebSocket /ws', () => {
  let jobpost: Jobpost
  let wsUrl: string
  let admin: TestUser
  let alice: TestUser
  let bob: TestUser

  beforeAll(async () => {
    jobpost = await startJobpost({ corsOrigins: ['https://admin.example.com'] })
    wsUrl = `ws://127.0.0.1:${(jobpost.server.address() as AddressInfo).port}/ws`
    ;[admin, alice, bob] = await Promise.all([
      userWithRole(jobpost, 'administrator'),
      userWithRole(jobpost, 'subscriber'),
      userWithRole(jobpost, 'subscriber'),
    ])
  })
  afterAll(() => jobpost.close())

  it('refuses a missing or bad credential with 401 and a foreign origin with 403, before any 101', async () => {
    expect(await upgradeStatus(wsUrl)).toBe(401)
    expect(await upgradeStatus(wsUrl, { authorization: 'Bearer nope' })).toBe(401)
    expect(await upgradeStatus(`${wsUrl}?ticket=forged`)).toBe(401)
    expect(await upgradeStatus(wsUrl, { authorization: `Bearer ${admin.token}`, origin: 'https://evil.example.com' })).toBe(403)
    expect(await upgradeStatus(wsUrl, { authorization: `Bearer ${admin.token}`, origin: 'https://admin.example.com' })).toBe(101)
    expect(await upgradeStatus(wsUrl.replace('/ws', '/other'), { authorization: `Bearer ${admin.token}` })).toBe(404)
  })

  it('accepts a single-use ticket, says connected, and answers ping with pong', async () => {
    const res = await request(jobpost.app).post('/api/v1/auth/ws-ticket').set('authorization', `Bearer ${alice.token}`).expect(201)
    const client = await connectWs(jobpost, { ticket: res.body.data.ticket })
    await client.next((m) => m.type === 'connected')
    client.ws.send(JSON.stringify({ type: 'ping' }))
    await client.next((m) => m.type === 'pong')
    client.ws.send('not json')
    await client.next((m) => m.type === 'error')
    await client.close()
    expect(await upgradeStatus(`${wsUrl}?ticket=${encodeURIComponent(res.body.data.ticket)}`)).toBe(401)
  })

  it('sends job_update with the full job to clients allowed to see it, never another user’s job', async () => {
    const adminWs = await connectWs(jobpost, { token: admin.token })
    const aliceWs = await connectWs(jobpost, { token: alice.token })
    const bobWs = await connectWs(jobpost, { token: bob.token })
    const hooks = jobpost.pluginHooks('ws-test')
    const aliceJob = await hooks.createJob({ name: 'alice secret', type: 'ws', createdBy: alice.id })
    const bobJob = await hooks.createJob({ name: 'bob secret', type: 'ws', createdBy: bob.id })
    await aliceJob.start()
    await bobJob.start()
    const seen = await aliceWs.next(isUpdate(aliceJob.jobId, (j) => j.status === 'running'))
    expect(seen.type === 'job_update' && seen.job).toMatchObject({ name: 'alice secret', status: 'running', createdBy: alice.id, attempts: 1 })
    await bobWs.next(isUpdate(bobJob.jobId, (j) => j.status === 'running'))
    await adminWs.next(isUpdate(aliceJob.jobId, (j) => j.status === 'running'))
    await adminWs.next(isUpdate(bobJob.jobId, (j) => j.status === 'running'))
    await aliceJob.complete()
    await bobJob.complete()
    await aliceWs.next(isUpdate(aliceJob.jobId, (j) => j.status === 'completed'))
    await bobWs.next(isUpdate(bobJob.jobId, (j) => j.status === 'completed'))
    expect(aliceWs.messages.some((m) => m.type === 'job_update' && m.job.jobId === bobJob.jobId)).toBe(false)
    expect(bobWs.messages.some((m) => m.type === 'job_update' && m.job.jobId === aliceJob.jobId)).toBe(false)
    await Promise.all([adminWs.close(), aliceWs.close(), bobWs.close()])
  })

  it('coalesces progress to at most 10 messages a second per job and always delivers the last value', async () => {
    const client = await connectWs(jobpost, { token: admin.token })
    const job = await jobpost.pluginHooks('burst').createJob({ name: 'burst', type: 'ws' })
    await job.start()
    await client.next(isUpdate(job.jobId, (j) => j.status === 'running'))
    const started = Date.now()
    for (let p = 1; p <= 100; p++) await job.updateProgress(p)
    const elapsed = Date.now() - started
    await client.next(isUpdate(job.jobId, (j) => j.progress === 100))
    const progressMessages = client.messages.filter(isUpdate(job.jobId, (j) => j.status === 'running' && j.progress > 0))
    // one per 100 ms window, plus the leading edge
    expect(progressMessages.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 2)
    expect(progressMessages.length).toBeLessThan(100)
    const last = progressMessages.at(-1)
    expect(last?.type === 'job_update' && last.job.progress).toBe(100)
    await job.complete()
    const final = await client.next(isUpdate(job.jobId, (j) => j.status === 'completed'))
    expect(final.type === 'job_update' && final.job.progress).toBe(100)
    await client.close()
  })

  it('broadcasts exactly one final state when complete() and fail() race', async () => {
    const client = await connectWs(jobpost, { token: admin.token })
    const job = await jobpost.pluginHooks('race').createJob({ name: 'race', type: 'ws' })
    await job.start()
    const results = await Promise.allSettled([job.complete('ok'), job.fail('boom')])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    // Messages on one socket arrive in order: once the pong is here, every earlier update is too.
    client.ws.send(JSON.stringify({ type: 'ping' }))
    await client.next((m) => m.type === 'pong')
    const finals = client.messages.filter(isUpdate(job.jobId, (j) => j.status === 'completed' || j.status === 'failed'))
    expect(finals).toHaveLength(1)
    await client.close()
  })

  it('sends job_deleted to those who could see the job', async () => {
    const client = await connectWs(jobpost, { token: admin.token })
    const job = await jobpost.pluginHooks('del').createJob({ name: 'gone', type: 'ws' })
    await job.cancel()
    await jobpost.jobs.deleteJob(job.jobId)
    await client.next((m) => m.type === 'job_deleted' && m.jobId === job.jobId)
    await client.close()
  })

  it('closes the sockets of a session at logout (bearer and ticket), and refuses its unused tickets', async () => {
    const session = await userWithRole(jobpost, 'editor')
    const other = await request(jobpost.app).post('/api/v1/auth/login').send({ email: session.email, password: PASSWORD }).expect(200)
    const ticketFor = async (token: string) =>
      (await request(jobpost.app).post('/api/v1/auth/ws-ticket').set('authorization', `Bearer ${token}`).expect(201)).body.data.ticket as string
    const byBearer = await connectWs(jobpost, { token: session.token })
    const byTicket = await connectWs(jobpost, { ticket: await ticketFor(session.token) })
    const otherSession = await connectWs(jobpost, { token: other.body.data.token })
    const unused = await ticketFor(session.token)
    const closes = [byBearer, byTicket].map((c) => new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code))))
    await request(jobpost.app).post('/api/v1/auth/logout').set('authorization', `Bearer ${session.token}`).expect(200)
    expect(await Promise.all(closes)).toEqual([4001, 4001])
    expect(otherSession.ws.readyState).toBe(otherSession.ws.OPEN)
    expect(await upgradeStatus(`${wsUrl}?ticket=${encodeURIComponent(unused)}`)).toBe(401)
    // the other session still gets updates
    const job = await jobpost.pluginHooks('logout').createJob({ name: 'after logout', type: 'ws' })
    await otherSession.next(isUpdate(job.jobId))
    await otherSession.close()
  })

  it('closes a connection that sends a frame over maxPayload', async () => {
    const client = await connectWs(jobpost, { token: admin.token })
    const closed = new Promise<number>((resolve) => client.ws.once('close', (code) => resolve(code)))
    client.ws.send('x'.repeat(10_000))
    expect(await closed).toBe(1009)
  })
})
