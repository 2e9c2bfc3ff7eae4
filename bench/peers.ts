import pg from 'pg'
import { log, percentile, sleep, waitFor } from './lib.js'

/** What each queue reports for the shared no-op workload. */
export interface QueueFigures {
  singleAddPerSec?: number
  bulkAddPerSec?: number
  processedPerSec: number
  latencyP50: number
  latencyP99: number
}

export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A fresh PostgreSQL database for one part of the bench, or null when none answers. */
export async function freshDatabase(label: string): Promise<{ url: string; drop(): Promise<void> } | null> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 })
  try {
    await admin.connect()
  } catch {
    return null
  }
  const name = `jobpost_bench_${label}_${process.pid}_${Date.now()}`
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
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

/** Paces `count` enqueues at `perSecond` and collects enqueue→start latencies (ms). */
export async function pacedLatency(options: {
  count: number
  perSecond: number
  enqueue(t0: number): Promise<unknown>
  latencies: number[]
  timeoutMs: number
}): Promise<{ p50: number; p99: number }> {
  const start = performance.now()
  for (let i = 0; i < options.count; i++) {
    const due = start + (i * 1000) / options.perSecond
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    await options.enqueue(performance.now())
  }
  await waitFor(() => options.latencies.length >= options.count, options.timeoutMs, 'latency jobs')
  return { p50: percentile(options.latencies, 50), p99: percentile(options.latencies, 99) }
}

/** BullMQ 6 on Redis: single add, addBulk, no-op processing at concurrency 10, latency. */
export async function benchBullmq(options: { singles: number; bulk: number; process: number; latencyJobs: number; perSecond: number }): Promise<QueueFigures | null> {
  const { Queue, Worker } = await import('bullmq')
  const { Redis } = await import('ioredis')
  const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  try {
    await probe.connect()
    await probe.ping()
  } catch {
    probe.disconnect()
    return null
  } finally {
    probe.disconnect()
  }
  const connection = { url: REDIS_URL, maxRetriesPerRequest: null } as const
  const name = `jobpost-bench-${process.pid}`
  const queue = new Queue(name, { connection })
  await queue.obliterate({ force: true }).catch(() => undefined)
  try {
    let start = performance.now()
    for (let i = 0; i < options.singles; i++) await queue.add('noop', { n: i })
    const singleAddPerSec = options.singles / ((performance.now() - start) / 1000)
    start = performance.now()
    for (let i = 0; i < options.bulk; i += 1000) {
      await queue.addBulk(Array.from({ length: Math.min(1000, options.bulk - i) }, (_, n) => ({ name: 'noop', data: { n } })))
    }
    const bulkAddPerSec = options.bulk / ((performance.now() - start) / 1000)
    await queue.obliterate({ force: true })

    for (let i = 0; i < options.process; i += 1000) {
      await queue.addBulk(Array.from({ length: Math.min(1000, options.process - i) }, (_, n) => ({ name: 'noop', data: { n } })))
    }
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
    start = performance.now()
    void worker.run()
    await waitFor(() => done >= options.process, 600_000, 'BullMQ processing')
    const processedPerSec = options.process / ((performance.now() - start) / 1000)
    const { p50, p99 } = await pacedLatency({
      count: options.latencyJobs,
      perSecond: options.perSecond,
      enqueue: (t0) => queue.add('noop', { t0 }),
      latencies,
      timeoutMs: 60_000,
    })
    await worker.close()
    return { singleAddPerSec, bulkAddPerSec, processedPerSec, latencyP50: p50, latencyP99: p99 }
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined)
    await queue.close()
  }
}

/**
 * pg-boss 10 on PostgreSQL: insert, no-op processing with 10 workers (its way of running 10 at
 * once), latency. Each pg-boss worker fetches `batchSize` jobs, then waits out its polling
 * interval (at least 0.5 s), so its throughput is bounded by polling, not by the database.
 */
export async function benchPgBoss(options: { process: number; latencyJobs: number; perSecond: number }): Promise<QueueFigures | null> {
  const database = await freshDatabase('pgboss')
  if (!database) return null
  const { default: PgBoss } = await import('pg-boss')
  const boss = new PgBoss({ connectionString: database.url, max: 12 })
  boss.on('error', (error: Error) => log(`pg-boss: ${error.message}`))
  try {
    await boss.start()
    const name = 'bench-noop'
    await boss.createQueue(name)
    for (let i = 0; i < options.process; i += 1000) {
      await boss.insert(Array.from({ length: Math.min(1000, options.process - i) }, (_, n) => ({ name, data: { n } })))
    }
    let done = 0
    const latencies: number[] = []
    const start = performance.now()
    // pg-boss 10 has no per-worker concurrency: each work() is one polling worker.
    for (let w = 0; w < 10; w++) {
      await boss.work<{ t0?: number }>(name, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
        if (typeof job?.data.t0 === 'number') latencies.push(performance.now() - job.data.t0)
        done++
      })
    }
    await waitFor(() => done >= options.process, 600_000, 'pg-boss processing')
    const processedPerSec = options.process / ((performance.now() - start) / 1000)
    const { p50, p99 } = await pacedLatency({
      count: options.latencyJobs,
      perSecond: options.perSecond,
      enqueue: (t0) => boss.send(name, { t0 }),
      latencies,
      timeoutMs: 120_000,
    })
    return { processedPerSec, latencyP50: p50, latencyP99: p99 }
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined)
    await database.drop().catch(() => undefined)
  }
}
