import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT_DIR, type DatabaseTarget } from '../core/config.js'
import type { JobAttempt, JobLogLine, ServerMessage } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { jobLogsFor } from '../core/logs/index.js'
import { connectWs, eventually, freshPostgresDatabase, startJobpost, userWithRole, type TestUser } from './support/harness.js'
import { registerLogProcessors } from './logs-fixtures/processors.js'

const LEASE_MS = 1000
const WORKER = path.join(ROOT_DIR, 'tests', 'logs-fixtures', 'worker.ts')

interface Worker {
  workerId: string
  pid: number
  kill(signal: NodeJS.Signals): Promise<void>
}

/** tests/logs-fixtures/worker.ts in its own process, on the same database; resolves at READY. */
async function spawnWorker(databaseUrl: string): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    cwd: ROOT_DIR,
    env: { ...process.env, DATABASE_URL: databaseUrl, WORKER_LEASE_MS: String(LEASE_MS) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const workerId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The worker did not start:\n${output}`)), 45_000)
    const onData = (chunk: Buffer) => {
      output += chunk
      const match = /READY (\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    void exited.then(() => reject(new Error(`The worker exited before READY:\n${output}`)))
  })
  return {
    workerId,
    pid: child.pid!,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    },
  }
}

describe.each(['sqlite', 'postgres'] as const)('job logs across processes (%s)', (dialect) => {
  let producer: (Jobpost & { url: string }) | undefined
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let databaseUrl = ''
  let admin: TestUser
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-logs-'))
  const workers: Worker[] = []

  beforeAll(async () => {
    let database: DatabaseTarget
    if (dialect === 'postgres') {
      pg = await freshPostgresDatabase('logs_processes')
      if (!pg) return
      databaseUrl = pg.url
      database = { dialect: 'postgres', connectionString: pg.url }
    } else {
      const file = path.join(tmp, 'jobs.sqlite')
      databaseUrl = `sqlite:${file}`
      database = { dialect: 'sqlite', filename: file }
    }
    // Serves HTTP and WebSocket; runs no jobs until a test starts its runtime.
    producer = await startJobpost({ database, runWorker: false, workerLeaseMs: LEASE_MS, workerPollMs: 100 })
    registerLogProcessors(producer.pluginHooks('logs-producer'))
    admin = await userWithRole(producer, 'administrator')
  }, 60_000)

  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.kill('SIGKILL')))
    await producer?.close()
    await pg?.drop()
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  const get = (p: string) => request(producer!.app).get(`/api/v1${p}`).set('Authorization', `Bearer ${admin.token}`)

  it('delivers the lines a processor in another process writes to a subscribed client, live', async (ctx) => {
    if (!producer) return ctx.skip()
    if (dialect === 'sqlite') return ctx.skip() // one SQLite file has no cross-process notifications: PostgreSQL only
    const ws = await connectWs(producer, { token: admin.token })
    // The job exists (pending) before any worker runs: every line it writes is live.
    const job = await producer.pluginHooks('logs-producer').enqueueJob({ type: 'log-lines', data: { count: 40, gapMs: 15 } })
    ws.ws.send(JSON.stringify({ type: 'subscribe_logs', jobId: job.jobId }))
    await eventually(() => jobLogsFor(producer!.jobs)!.fanout.subscriptionCount === 1)
    const worker = await spawnWorker(databaseUrl)
    workers.push(worker)

    const received: JobLogLine[] = []
    let messages = 0
    ws.ws.on('message', (raw) => {
      const message = JSON.parse(raw.toString()) as ServerMessage
      if (message.type === 'job_log' && message.jobId === job.jobId) {
        messages++
        received.push(...message.lines)
      }
    })
    await eventually(() => received.length >= 40, { timeoutMs: 20_000 })
    expect(received.map((line) => line.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    expect(received.map((line) => line.message)).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 1}`))
    // Lines arrived while the job ran (several batches, not one read at the end).
    expect(messages).toBeGreaterThan(1)
    const attempts = await eventually(async () => {
      const list = (await get(`/jobs/${job.jobId}/attempts`).expect(200)).body.data as JobAttempt[]
      return list[0]?.outcome === 'completed' ? list : null
    })
    expect(attempts).toMatchObject([{ attempt: 1, instance: worker.workerId, outcome: 'completed' }])
    await ws.close()
    await worker.kill('SIGTERM')
  }, 60_000)

  it('records an attempt whose process died as lease_expired, then the next attempt', async (ctx) => {
    if (!producer) return ctx.skip()
    const worker = await spawnWorker(databaseUrl)
    workers.push(worker)
    const job = await producer.pluginHooks('logs-producer').enqueueJob({ type: 'hang-first', data: {} })
    // The worker runs attempt 1, logs its line, then hangs.
    const lines = await eventually(async () => {
      const res = await get(`/jobs/${job.jobId}/logs`)
      return res.body.data.length === 1 ? (res.body.data as JobLogLine[]) : null
    }, { timeoutMs: 20_000 })
    expect(lines![0]).toMatchObject({ seq: 1, attempt: 1, message: 'attempt 1 runs', fields: { pid: worker.pid } })
    expect((await get(`/jobs/${job.jobId}/attempts`)).body.data).toMatchObject([{ attempt: 1, outcome: 'running', instance: worker.workerId, finishedAt: null, durationMs: null }])

    await worker.kill('SIGKILL')
    // This process recovers the expired lease and runs attempt 2.
    producer.runtime.start()
    const attempts = await eventually(async () => {
      const list = (await get(`/jobs/${job.jobId}/attempts`)).body.data as JobAttempt[]
      return list.length === 2 && list[1]!.outcome === 'completed' ? list : null
    }, { timeoutMs: 20_000 })
    expect(attempts![0]).toMatchObject({ attempt: 1, instance: worker.workerId, outcome: 'lease_expired', error: { message: expect.stringContaining('lease') } })
    expect(attempts![0]!.durationMs).toBeGreaterThanOrEqual(LEASE_MS - 50)
    expect(attempts![1]).toMatchObject({ attempt: 2, instance: producer.runtime.workerId, outcome: 'completed' })
    await jobLogsFor(producer.jobs)!.flush()
    const all = (await get(`/jobs/${job.jobId}/logs`)).body.data as JobLogLine[]
    expect(all.map((line) => [line.seq, line.attempt, line.message])).toEqual([
      [1, 1, 'attempt 1 runs'],
      [2, 2, 'attempt 2 runs'],
    ])
    await producer.runtime.stop()
  }, 60_000)
})
