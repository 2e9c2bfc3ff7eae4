import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { eventually, freshPostgresDatabase, startJobpost } from '../support/harness.js'
import { spawnWorker, type WorkerProcess } from './support.js'

const JOBS = 5000
/** Per worker process; larger batches per claim and settle keep the run short on a busy machine. */
const WORKER_ENV = { WORKER_CONCURRENCY: '50', CLUSTER_RUN_CONCURRENCY: '50' }

describe('several worker processes on one PostgreSQL database', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let producer: Jobpost | undefined
  let client: pg.Client | undefined
  const workers: WorkerProcess[] = []

  beforeAll(async () => {
    database = await freshPostgresDatabase('cluster_workers')
    if (!database) return
    // The producer runs the migrations and enqueues; it runs no jobs itself.
    producer = await startJobpost({ database: { dialect: 'postgres', connectionString: database.url } }, { listen: false })
    client = new pg.Client({ connectionString: database.url })
    await client.connect()
    await client.query('CREATE TABLE cluster_runs (job_id text PRIMARY KEY, worker text NOT NULL)')
    await client.query('CREATE TABLE cluster_double_runs (job_id text NOT NULL, worker text NOT NULL)')
    workers.push(...(await Promise.all([spawnWorker(database.url, WORKER_ENV), spawnWorker(database.url, WORKER_ENV)])))
  }, 90_000)

  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop()))
    await client?.end()
    await producer?.close()
    await database?.drop()
  })

  it(`two worker processes run ${JOBS} jobs, each exactly once`, async (ctx) => {
    if (!database) return ctx.skip()
    const hooks = producer!.pluginHooks('cluster-test')
    for (let i = 0; i < JOBS; i += 1000) {
      await hooks.enqueueJobs(Array.from({ length: Math.min(1000, JOBS - i) }, (_, n) => ({ type: 'cluster-run', data: { n: i + n } })))
    }
    await eventually(async () => (await producer!.jobs.stats()).byStatus.completed === JOBS, { timeoutMs: 80_000, intervalMs: 500 })

    const stats = await producer!.jobs.stats()
    expect(stats.byStatus).toMatchObject({ completed: JOBS, pending: 0, running: 0, failed: 0 })
    const runs = await client!.query('SELECT worker, count(*)::int AS n FROM cluster_runs GROUP BY worker')
    const perWorker = Object.fromEntries(runs.rows.map((row) => [row.worker, row.n]))
    expect(Object.values(perWorker).reduce((a: number, b) => a + (b as number), 0)).toBe(JOBS)
    // Both processes took part (SKIP LOCKED lets them claim side by side).
    expect(Object.keys(perWorker)).toHaveLength(2)
    const doubles = await client!.query('SELECT count(*)::int AS n FROM cluster_double_runs')
    expect(doubles.rows[0].n).toBe(0)
    // Every job took one attempt.
    const attempts = await client!.query(
      'SELECT attempts, count(*)::int AS n FROM job_state GROUP BY attempts',
    )
    expect(attempts.rows).toEqual([{ attempts: 1, n: JOBS }])
  }, 90_000)

  it('lists every live instance with its heartbeat in the jobs stats', async (ctx) => {
    if (!database) return ctx.skip()
    const { instances } = await producer!.jobs.stats()
    const ids = (instances ?? []).filter((instance) => instance.alive).map((instance) => instance.id)
    expect(ids).toEqual(expect.arrayContaining([producer!.runtime.workerId, ...workers.map((worker) => worker.workerId)]))
    const worker = instances!.find((instance) => instance.id === workers[0]!.workerId)!
    expect(worker).toMatchObject({ role: 'worker', pid: workers[0]!.child.pid, alive: true })
    expect(Date.parse(worker.lastSeen)).toBeGreaterThanOrEqual(Date.parse(worker.startedAt))

    // A clean shutdown removes the instance at once.
    await workers[1]!.stop()
    const after = await producer!.jobs.stats()
    expect(after.instances!.map((instance) => instance.id)).not.toContain(workers[1]!.workerId)
  })
})
