import path from 'node:path'
import request from 'supertest'
import WebSocket from 'ws'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT_DIR } from '../../core/config.js'
import type { ServerMessage } from '../../core/contract.js'
import { eventually, startJobpost } from '../support/harness.js'
import { readEvents, spawnTs, spawnWorker, tempDir, type Child } from './support/processes.js'

const sqlite = (file: string) => ({ dialect: 'sqlite' as const, filename: file })

/**
 * SIGTERM with jobs in flight: `npm start` (core/server.ts) drains its running job, closes every
 * WebSocket with 1001 and exits 0; a worker whose grace runs out releases its job to the queue
 * (the interrupted attempt not counted) and another process finishes it, once.
 */
describe('SIGTERM with jobs in flight', () => {
  const children: Child[] = []
  const dirs: { remove(): void }[] = []
  afterAll(async () => {
    for (const child of children) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL')
    await Promise.all(children.map((child) => child.exited))
    for (const dir of dirs) dir.remove()
  })

  it('core/server.ts drains the running job, closes WebSockets with 1001, and exits 0', async () => {
    const tmp = tempDir('sigterm-server')
    dirs.push(tmp)
    const file = path.join(tmp.dir, 'jobs.sqlite')
    const server = spawnTs(path.join(ROOT_DIR, 'core', 'server.ts'), {
      DATABASE_URL: `sqlite:${file}`,
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_EMAIL: 'admin@example.com',
      ADMIN_PASSWORD: 'a long admin password',
      ACTIVE_PLUGINS: 'example-job-plugin',
      EXAMPLE_JOB_STEP_MS: '300',
      LOG_LEVEL: 'info',
    })
    children.push(server)
    const [, url] = await server.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
    const login = await request(url!).post('/api/v1/auth/login').send({ email: 'admin@example.com', password: 'a long admin password' }).expect(200)
    const token = login.body.data.token as string

    const sockets = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<{ ws: WebSocket; messages: ServerMessage[]; closed: Promise<number> }>((resolve, reject) => {
            const ws = new WebSocket(`${url!.replace('http', 'ws')}/ws`, { headers: { authorization: `Bearer ${token}` } })
            const messages: ServerMessage[] = []
            ws.on('message', (raw) => messages.push(JSON.parse(raw.toString())))
            const closed = new Promise<number>((done) => ws.once('close', (code) => done(code)))
            ws.once('open', () => resolve({ ws, messages, closed }))
            ws.once('error', reject)
          }),
      ),
    )
    const run = await request(url!).post('/api/v1/plugins/example-job-plugin/run').set('authorization', `Bearer ${token}`).send({ kind: 'import' }).expect(201)
    const jobId = run.body.data.jobId as string
    await eventually(() => sockets[0]!.messages.some((m) => m.type === 'job_update' && m.job.jobId === jobId && m.job.status === 'running' && m.job.progress > 0), {
      timeoutMs: 10_000,
    })

    server.child.kill('SIGTERM')
    expect(await Promise.all(sockets.map((s) => s.closed))).toEqual([1001, 1001, 1001])
    expect(await server.exited).toEqual({ code: 0, signal: null })

    // The job finished within the grace: completed, one attempt, nothing left running.
    const after = await startJobpost({ database: sqlite(file) }, { listen: false })
    try {
      expect(await after.jobs.getJobRecord(jobId)).toMatchObject({ status: 'completed', attempts: 1, progress: 100, lockedUntil: null })
      expect((await after.jobs.stats()).byStatus.running).toBe(0)
    } finally {
      await after.close()
    }
  }, 60_000)

  it('core/worker.ts (`npm run worker`) drains its running job on SIGTERM and exits 0', async () => {
    const tmp = tempDir('sigterm-npm-worker')
    dirs.push(tmp)
    const file = path.join(tmp.dir, 'jobs.sqlite')
    const producer = await startJobpost({ database: sqlite(file) }, { listen: false })
    try {
      const worker = spawnTs(path.join(ROOT_DIR, 'core', 'worker.ts'), {
        DATABASE_URL: `sqlite:${file}`,
        ACTIVE_PLUGINS: 'example-job-plugin',
        EXAMPLE_JOB_STEP_MS: '300',
        LOG_LEVEL: 'info',
      })
      children.push(worker)
      await worker.waitFor(/Jobpost worker started/)
      const job = await producer.pluginHooks('sigterm-test').enqueueJob({ type: 'example-import', data: { items: 10 } })
      await eventually(async () => ((await producer.jobs.getJob(job.jobId))?.progress ?? 0) > 0, { timeoutMs: 10_000 })
      worker.child.kill('SIGTERM')
      expect(await worker.exited).toEqual({ code: 0, signal: null })
      expect(await producer.jobs.getJobRecord(job.jobId)).toMatchObject({ status: 'completed', attempts: 1, progress: 100, lockedUntil: null })
    } finally {
      await producer.close()
    }
  }, 60_000)

  it('a worker whose grace runs out releases its jobs (attempt not counted) and takes no new ones; another finishes them once', async () => {
    const tmp = tempDir('sigterm-worker')
    dirs.push(tmp)
    const file = path.join(tmp.dir, 'jobs.sqlite')
    const databaseUrl = `sqlite:${file}`
    const eventLog = path.join(tmp.dir, 'events.log')
    const producer = await startJobpost({ database: sqlite(file) }, { listen: false })
    try {
      const hooks = producer.pluginHooks('sigterm-test')
      const slow = await hooks.enqueueJobs(Array.from({ length: 3 }, () => ({ type: 'fixture', data: { mode: 'slow' }, maxAttempts: 1 })))
      const first = await spawnWorker({ databaseUrl, eventLog, graceMs: 300, leaseMs: 30_000, env: { FIXTURE_SLOW_MS: '60000' } })
      children.push(first)
      await eventually(() => readEvents(eventLog).filter((e) => e.event === 'start').length === 3, { timeoutMs: 10_000 })
      // Due while the worker is stopping: it must not be claimed by the stopping worker.
      const later = await hooks.enqueueJob({ type: 'fixture', data: { mode: 'fast' }, delay: 200 })

      first.child.kill('SIGTERM')
      expect(await first.exited).toEqual({ code: 0, signal: null })
      await new Promise((resolve) => setTimeout(resolve, 300))
      for (const job of slow) {
        // maxAttempts 1: had the interrupted attempt counted, the job could never run again.
        expect(await producer.jobs.getJobRecord(job.jobId)).toMatchObject({ status: 'pending', attempts: 0, lockedUntil: null, attemptToken: null })
      }
      expect(await producer.jobs.getJobRecord(later.jobId)).toMatchObject({ status: 'pending', attempts: 0 })
      expect(readEvents(eventLog).filter((e) => e.jobId === later.jobId)).toEqual([])

      const second = await spawnWorker({ databaseUrl, eventLog, env: { FIXTURE_SLOW_MS: '10' } })
      children.push(second)
      const ids = [...slow, later].map((job) => job.jobId)
      await eventually(async () => (await Promise.all(ids.map((id) => producer.jobs.getJob(id)))).every((job) => job!.status === 'completed'), {
        timeoutMs: 15_000,
      })
      // A settle's event is logged just after its commit: wait for the lines too.
      const events = await eventually(() => {
        const lines = readEvents(eventLog)
        return ids.every((jobId) => lines.some((e) => e.jobId === jobId && e.event === 'job:completed')) ? lines : null
      })
      for (const jobId of ids) {
        expect(events!.filter((e) => e.jobId === jobId && e.event === 'job:completed').map((e) => e.pid)).toEqual([second.child.pid])
        expect(await producer.jobs.getJobRecord(jobId)).toMatchObject({ status: 'completed', attempts: 1 })
      }
      second.child.kill('SIGTERM')
      expect((await second.exited).code).toBe(0)
    } finally {
      await producer.close()
    }
  }, 60_000)
})
