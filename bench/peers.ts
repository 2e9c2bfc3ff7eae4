/**
 * The peers, each configured as its own documentation recommends for throughput, on the same
 * workload as Jobpost: sequential single adds, bulk adds of 1,000, no-op jobs at concurrency 10,
 * and enqueue→start latency at a steady rate. Each PostgreSQL peer gets its own database.
 */
import pg from 'pg'
import { log, pacedLatency, sleep, timeUntil, type SystemFigures, type Workload } from './lib.js'

export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

const CHUNK = 1000

/** A fixed-name database (`bench_<label>`), dropped and created afresh; null when PostgreSQL does not answer. */
export async function freshDatabase(label: string): Promise<{ url: string; drop(): Promise<void> } | null> {
  const name = `bench_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`
  const admin = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 })
  try {
    await admin.connect()
  } catch {
    return null
  }
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  return {
    url: POSTGRES_URL.replace(/\/[^/]*$/, `/${name}`),
    async drop() {
      const client = new pg.Client({ connectionString: POSTGRES_URL })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

async function inChunks(total: number, add: (count: number, offset: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < total; i += CHUNK) await add(Math.min(CHUNK, total - i), i)
}

// -------------------------------------------------------------------------------------------

/** BullMQ 6 on Redis: `add`, `addBulk`, a Worker with concurrency 10. */
export async function benchBullmq(w: Workload): Promise<SystemFigures | null> {
  const { Queue, Worker } = await import('bullmq')
  const { Redis } = await import('ioredis')
  const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  try {
    await probe.connect()
    await probe.ping()
  } catch {
    log('BullMQ skipped: no Redis at ' + REDIS_URL)
    return null
  } finally {
    probe.disconnect()
  }
  const connection = { url: REDIS_URL, maxRetriesPerRequest: null } as const
  const name = 'jobpost-bench'
  const queue = new Queue(name, { connection })
  await queue.obliterate({ force: true }).catch(() => undefined)
  try {
    let start = performance.now()
    for (let i = 0; i < w.singles; i++) await queue.add('noop', { n: i })
    const singlePerSec = w.singles / ((performance.now() - start) / 1000)
    start = performance.now()
    await inChunks(w.bulk, (count) => queue.addBulk(Array.from({ length: count }, (_, n) => ({ name: 'noop', data: { n } }))))
    const bulkPerSec = w.bulk / ((performance.now() - start) / 1000)
    await queue.obliterate({ force: true })

    await inChunks(w.process, (count) => queue.addBulk(Array.from({ length: count }, (_, n) => ({ name: 'noop', data: { n } }))))
    let done = 0
    const latencies: number[] = []
    const worker = new Worker(
      name,
      async (job) => {
        if (typeof job.data.t0 === 'number') latencies.push(performance.now() - job.data.t0)
        return null
      },
      { connection, concurrency: 10, autorun: false },
    )
    worker.on('completed', () => void done++)
    void worker.run()
    const processMs = await timeUntil(() => done >= w.process, 'BullMQ processing')
    const { p50, p99 } = await pacedLatency({
      count: w.latencyJobs,
      perSecond: w.perSecond,
      enqueue: (t0) => queue.add('noop', { t0 }),
      latencies,
    })
    await worker.close()
    return { bulkPerSec, singlePerSec, processedPerSec: w.process / (processMs / 1000), latencyP50: p50, latencyP99: p99 }
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined)
    await queue.close()
  }
}

// -------------------------------------------------------------------------------------------

/**
 * pg-boss 12 as its docs advise for throughput and latency: `useListenNotify` with a `notify`
 * queue (a new job wakes the worker at once), `work()` fetching `batchSize` 10 with
 * `burstWhenBatchFull` (no polling pause while batches come back full) and the shortest
 * polling interval (0.5 s) as the backstop; `insert` for bulk, `send` for one.
 */
export async function benchPgBoss(w: Workload): Promise<SystemFigures | null> {
  const database = await freshDatabase('pgboss')
  if (!database) {
    log('pg-boss skipped: no PostgreSQL at ' + POSTGRES_URL)
    return null
  }
  const { PgBoss } = await import('pg-boss')
  const boss = new PgBoss({ connectionString: database.url, max: 12, useListenNotify: true, schedule: false })
  boss.on('error', (error: Error) => log(`pg-boss: ${error.message}`))
  try {
    await boss.start()
    await boss.createQueue('create', { notify: true })
    let start = performance.now()
    for (let i = 0; i < w.singles; i++) await boss.send('create', { n: i })
    const singlePerSec = w.singles / ((performance.now() - start) / 1000)
    start = performance.now()
    await inChunks(w.bulk, (count) => boss.insert('create', Array.from({ length: count }, (_, n) => ({ data: { n } }))))
    const bulkPerSec = w.bulk / ((performance.now() - start) / 1000)
    await boss.deleteQueue('create')

    const name = 'noop'
    await boss.createQueue(name, { notify: true })
    await inChunks(w.process, (count) => boss.insert(name, Array.from({ length: count }, (_, n) => ({ data: { n } }))))
    let done = 0
    let firstAt = 0
    const latencies: number[] = []
    await boss.work<{ t0?: number }>(name, { batchSize: 10, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }, async (jobs) => {
      if (firstAt === 0) firstAt = performance.now()
      for (const job of jobs) {
        if (typeof job.data?.t0 === 'number') latencies.push(performance.now() - job.data.t0)
      }
      done += jobs.length
    })
    // Timed from its first fetched batch (work() resolves once the worker is registered).
    await timeUntil(() => done >= w.process, 'pg-boss processing')
    const processMs = performance.now() - firstAt
    const { p50, p99 } = await pacedLatency({
      count: w.latencyJobs,
      perSecond: w.perSecond,
      enqueue: (t0) => boss.send(name, { t0 }),
      latencies,
    })
    return { bulkPerSec, singlePerSec, processedPerSec: w.process / (processMs / 1000), latencyP50: p50, latencyP99: p99 }
  } finally {
    await boss.stop({ graceful: false, close: true, timeout: 2000 }).catch(() => undefined)
    await database.drop().catch(() => undefined)
  }
}

// -------------------------------------------------------------------------------------------

/**
 * graphile-worker 0.18 with the batching of its performance docs: a local queue that locks and
 * pulls jobs in batches, batched completions (`completeJobBatchDelay: 0`), concurrency 10 with a
 * pool of 12 (concurrency + 2), LISTEN/NOTIFY for new jobs (built in) and `pollInterval` for
 * the rest; `addJobs` for bulk, `addJob` for one; its per-job info logging off.
 */
export async function benchGraphile(w: Workload): Promise<SystemFigures | null> {
  const database = await freshDatabase('graphile')
  if (!database) {
    log('graphile-worker skipped: no PostgreSQL at ' + POSTGRES_URL)
    return null
  }
  const { run, makeWorkerUtils, Logger } = await import('graphile-worker')
  const logger = new Logger(() => (level: string, message: string) => {
    if (level === 'error') log(`graphile-worker: ${message}`)
  })
  // One pool of our own (concurrency + 2, as its docs advise), so that it is closed before the drop.
  const pool = new pg.Pool({ connectionString: database.url, max: 12 })
  pool.on('error', () => undefined)
  pool.on('connect', (client) => client.on('error', () => undefined))
  const utils = await makeWorkerUtils({ pgPool: pool, logger })
  let runner: Awaited<ReturnType<typeof run>> | undefined
  try {
    await utils.migrate()
    let start = performance.now()
    for (let i = 0; i < w.singles; i++) await utils.addJob('create', { n: i })
    const singlePerSec = w.singles / ((performance.now() - start) / 1000)
    start = performance.now()
    await inChunks(w.bulk, (count) => utils.addJobs(Array.from({ length: count }, (_, n) => ({ identifier: 'create', payload: { n } }))))
    const bulkPerSec = w.bulk / ((performance.now() - start) / 1000)
    await utils.withPgClient((client) => client.query("DELETE FROM graphile_worker._private_jobs"))

    await inChunks(w.process, (count) => utils.addJobs(Array.from({ length: count }, (_, n) => ({ identifier: 'noop', payload: { n } }))))
    let done = 0
    let firstAt = 0
    const latencies: number[] = []
    runner = await run({
      pgPool: pool,
      concurrency: 10,
      pollInterval: 1000,
      noHandleSignals: true,
      logger,
      taskList: {
        noop: async (payload) => {
          if (firstAt === 0) firstAt = performance.now()
          const t0 = (payload as { t0?: number } | null)?.t0
          if (typeof t0 === 'number') latencies.push(performance.now() - t0)
        },
      },
      preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    })
    runner.events.on('job:complete', () => void done++)
    // Timed from its first task (run() resolves after the pool has started).
    await timeUntil(() => done >= w.process, 'graphile-worker processing')
    // Its completions are batched: timed until the last one is committed (completed jobs are deleted).
    const remaining = async () => Number((await pool.query('SELECT count(*) AS n FROM graphile_worker._private_jobs')).rows[0].n)
    while ((await remaining()) > 0) await sleep(2)
    const processMs = performance.now() - firstAt
    const { p50, p99 } = await pacedLatency({
      count: w.latencyJobs,
      perSecond: w.perSecond,
      enqueue: (t0) => utils.addJob('noop', { t0 }),
      latencies,
    })
    return { bulkPerSec, singlePerSec, processedPerSec: w.process / (processMs / 1000), latencyP50: p50, latencyP99: p99 }
  } finally {
    await Promise.resolve(runner?.stop()).catch(() => undefined)
    await Promise.resolve(utils.release()).catch(() => undefined)
    await pool.end().catch(() => undefined)
    await database.drop().catch(() => undefined)
  }
}
