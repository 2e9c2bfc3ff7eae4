import path from 'node:path'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import type { ServerMessage } from '../../core/contract.js'
import { connectWs, eventually, startJobpost, userWithRole } from '../support/harness.js'
import { readEvents, spawnWorker, tempDir, type Child } from './support/processes.js'

/**
 * `npm start` and `npm run worker` on one SQLite file (two real processes): the worker's updates
 * reach the server's WebSocket clients (through the outbox table, read when PRAGMA data_version
 * changes), and a cancel or pause made on the server aborts the attempt in the worker at once,
 * long before the worker's next lease renewal would notice.
 */
describe('two processes on one SQLite file', () => {
  const tmp = tempDir('sqlite-procs')
  const file = path.join(tmp.dir, 'jobs.sqlite')
  const eventLog = path.join(tmp.dir, 'events.log')
  let server: Jobpost | undefined
  let worker: Child | undefined

  beforeAll(async () => {
    server = await startJobpost({ database: { dialect: 'sqlite', filename: file } })
    // A long lease: its renewals (every 10 s) cannot be what tells the worker.
    worker = await spawnWorker({ databaseUrl: `sqlite:${file}`, eventLog, leaseMs: 30_000 })
  })
  afterAll(async () => {
    if (worker && worker.child.exitCode === null) worker.child.kill('SIGKILL')
    await worker?.exited
    await server?.close()
    tmp.remove()
  })

  it('shows the worker’s progress and completion to the server’s WebSocket clients', async () => {
    const admin = await userWithRole(server!, 'administrator')
    const ws = await connectWs(server!, { token: admin.token })
    const job = await server!.pluginHooks('test').enqueueJob({ type: 'fixture', data: { mode: 'progress' } })
    const isUpdate = (m: ServerMessage, check: (job: Extract<ServerMessage, { type: 'job_update' }>['job']) => boolean) =>
      m.type === 'job_update' && m.job.jobId === job.jobId && check(m.job)
    await ws.next((m) => isUpdate(m, (j) => j.status === 'running'), 10_000)
    await ws.next((m) => isUpdate(m, (j) => j.status === 'running' && j.progress === 50 && (j.metadata as { step?: number }).step === 50), 10_000)
    const done = await ws.next((m) => isUpdate(m, (j) => j.status === 'completed'), 10_000)
    expect(done).toMatchObject({ job: { progress: 100, result: { pid: worker!.child.pid } } })
    // Nothing of it ran here.
    expect(server!.runtime.runningCount).toBe(0)
    await ws.close()
  }, 30_000)

  it('a cancel and a pause made on the server abort the attempt running in the worker at once', async () => {
    const admin = await userWithRole(server!, 'administrator')
    const api = (jobId: string, action: string) => request(server!.app).post(`/api/v1/jobs/${jobId}/${action}`).set('Authorization', `Bearer ${admin.token}`)
    for (const action of ['cancel', 'pause'] as const) {
      const job = await server!.pluginHooks('test').enqueueJob({ type: 'fixture', data: { mode: 'slow', ms: 20_000 } })
      await eventually(() => readEvents(eventLog).some((e) => e.event === 'start' && e.jobId === job.jobId), { timeoutMs: 10_000 })
      const at = Date.now()
      await api(job.jobId, action).expect(200)
      const reason = action === 'cancel' ? 'cancelled' : 'paused'
      const aborted = await eventually(() => readEvents(eventLog).find((e) => e.event === `abort-${reason}` && e.jobId === job.jobId), { timeoutMs: 5000 })
      expect(aborted!.at - at).toBeLessThan(2000)
      expect((await server!.jobs.getJob(job.jobId))!.status).toBe(action === 'cancel' ? 'cancelled' : 'paused')
    }
  }, 40_000)
})
