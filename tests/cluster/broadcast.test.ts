import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OffsetClock } from '../../core/clock.js'
import { LISTEN_APPLICATION_NAME } from '../../core/cluster/PgNotifier.js'
import type { Job, ServerMessage } from '../../core/contract.js'
import { connectWs, eventually, freshPostgresDatabase, startJobpost, userWithRole } from '../support/harness.js'

type Started = Awaited<ReturnType<typeof startJobpost>>

const update = (jobId: string, predicate: (job: Job) => boolean) => (message: ServerMessage) =>
  message.type === 'job_update' && message.job.jobId === jobId && predicate(message.job)

describe('WebSocket broadcasts across instances (PostgreSQL LISTEN/NOTIFY)', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let a: Started | undefined
  let b: Started | undefined
  const gates = new Map<string, () => void>()
  const aborted = new Set<string>()

  beforeAll(async () => {
    database = await freshPostgresDatabase('cluster_broadcast')
    if (!database) return
    const target = { database: { dialect: 'postgres' as const, connectionString: database.url } }
    // A serves the clients and runs nothing; B runs the jobs.
    a = await startJobpost(target)
    b = await startJobpost(target, { runWorker: true })
    b.pluginHooks('cluster-test').registerJobProcessor('cross-instance', async (job, { updateProgress }) => {
      await updateProgress(50, { step: 'half' })
      await new Promise<void>((resolve) => gates.set(job.jobId, resolve))
      return { ranOn: 'b' }
    })
    b.pluginHooks('cluster-test').registerJobProcessor('cross-instance-abortable', async (job, { signal }) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      aborted.add(job.jobId)
      return null
    })
  })

  afterAll(async () => {
    await a?.close()
    await b?.close()
    await database?.drop()
  })

  /** Enqueues on A (which has no processor for the type) and waits until B's handler holds it. */
  async function enqueueOnA(): Promise<string> {
    const job = await a!.pluginHooks('cluster-test').enqueueJob({ type: 'cross-instance', name: 'Runs on B' })
    await eventually(() => gates.has(job.jobId), { timeoutMs: 10_000 })
    return job.jobId
  }

  it('a client of instance A sees the progress and completion of a job that instance B runs', async (ctx) => {
    if (!database) return ctx.skip()
    const admin = await userWithRole(a!, 'administrator')
    const subscriber = await userWithRole(a!, 'subscriber')
    const watcher = await connectWs(a!, { token: admin.token })
    const outsider = await connectWs(a!, { token: subscriber.token })
    try {
      const jobId = await enqueueOnA()
      const running = await watcher.next(update(jobId, (job) => job.status === 'running' && job.progress === 50), 10_000)
      expect(running.type === 'job_update' && running.job.metadata).toEqual({ step: 'half' })
      gates.get(jobId)!()
      const done = await watcher.next(update(jobId, (job) => job.status === 'completed'), 10_000)
      expect(done.type === 'job_update' && done.job.result).toEqual({ ranOn: 'b' })
      // B ran it: A has no processor and ran nothing.
      expect(a!.runtime.runningCount).toBe(0)
      // The per-client filter applies to remote events too: a subscriber may not see this job.
      await watcher.next(update(jobId, (job) => job.status === 'completed'))
      expect(outsider.messages.some((message) => message.type === 'job_update' && message.job.jobId === jobId)).toBe(false)
    } finally {
      await watcher.close()
      await outsider.close()
    }
  })

  it('a cancel on instance A aborts the attempt running on instance B at once, not at its next heartbeat', async (ctx) => {
    if (!database) return ctx.skip()
    const job = await a!.pluginHooks('cluster-test').enqueueJob({ type: 'cross-instance-abortable', name: 'Cancelled from A' })
    await eventually(() => b!.runtime.isRunning(job.jobId), { timeoutMs: 10_000 })
    const cancelledAt = Date.now()
    await a!.jobs.cancel(job.jobId)
    // The lease heartbeat would take leaseMs / 3 = 10 s; the notification takes milliseconds.
    await eventually(() => aborted.has(job.jobId), { timeoutMs: 3000 })
    expect(Date.now() - cancelledAt).toBeLessThan(3000)
    await eventually(() => !b!.runtime.isRunning(job.jobId), { timeoutMs: 5000 })
    expect((await b!.jobs.getJob(job.jobId))!.status).toBe('cancelled')
  })

  it('follows the database clock, and lists both instances in the stats', async (ctx) => {
    if (!database) return ctx.skip()
    expect(a!.clock).toBeInstanceOf(OffsetClock)
    // Same machine: the measured offset is small.
    expect(Math.abs((a!.clock as OffsetClock).offset)).toBeLessThan(1000)
    const { instances } = await a!.jobs.stats()
    expect(instances!.map((instance) => instance.id)).toEqual(expect.arrayContaining([a!.runtime.workerId, b!.runtime.workerId]))
    expect(instances!.every((instance) => instance.alive && instance.role === 'server')).toBe(true)
  })

  it('reconnects its LISTEN connection when it drops, and broadcasts flow again', async (ctx) => {
    if (!database) return ctx.skip()
    const admin = await userWithRole(a!, 'administrator')
    const watcher = await connectWs(a!, { token: admin.token })
    const killer = new pg.Client({ connectionString: database.url })
    await killer.connect()
    try {
      const { rows } = await killer.query(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
        [LISTEN_APPLICATION_NAME],
      )
      expect(rows.length).toBeGreaterThanOrEqual(2)
      await eventually(() => a!.cluster.notifier!.isConnected && b!.cluster.notifier!.isConnected, { timeoutMs: 10_000 })
      const jobId = await enqueueOnA()
      await watcher.next(update(jobId, (job) => job.status === 'running'), 10_000)
      gates.get(jobId)!()
      await watcher.next(update(jobId, (job) => job.status === 'completed'), 10_000)
    } finally {
      await killer.end()
      await watcher.close()
    }
  })
})
