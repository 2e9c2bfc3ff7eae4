/**
 * Jobpost's queue rows, through its public surfaces only (createJobpost, pluginHooks): the same
 * workload as the peers, on a SQLite file (WAL) and on PostgreSQL with one and two instances.
 */
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { DatabaseTarget } from '../core/config.js'
import { createJobpost, type Jobpost } from '../core/createJobpost.js'
import { benchConfig } from './http.js'
import { epochNow, log, pacedLatency, tempDir, timeUntil, waitFor, type SystemFigures, type Workload } from './lib.js'
import { freshDatabase } from './peers.js'

const CHUNK = 1000
export const NOOP = 'bench-noop'

/**
 * The queue rows run without the per-owner creation limits (the peers have none; BENCH_LIMITS=default
 * keeps them); `limitsCost` measures what the default limits cost a single create.
 */
export const QUEUE_UNLIMITED = process.env.BENCH_LIMITS !== 'default'

export async function openJobpost(target: DatabaseTarget, options: { concurrency?: number; unlimited?: boolean } = {}): Promise<Jobpost> {
  return createJobpost(benchConfig(target, { unlimited: QUEUE_UNLIMITED, ...options }), { runWorker: false })
}

/**
 * Single `createJob` with the default creation limits (rate and pending quota per plugin), with
 * `pending` jobs of the same plugin already waiting, against the same without limits (at most
 * `singles` creates or 10 s of them).
 */
export async function limitsCost(target: () => Promise<{ target: DatabaseTarget; done(): Promise<void> } | null>, pending: number, singles: number) {
  const run = async (unlimited: boolean) => {
    const db = await target()
    if (!db) return null
    const jobpost = await openJobpost(db.target, { unlimited })
    try {
      await enqueueMany(jobpost, 'bench-waiting', pending)
      const hooks = jobpost.pluginHooks('bench')
      // At most `singles`, or 10 s of them.
      const start = performance.now()
      let done = 0
      while (done < singles && performance.now() - start < 10_000) {
        await hooks.createJob({ name: 'Bench create', type: 'bench-create' })
        done++
      }
      return done / ((performance.now() - start) / 1000)
    } finally {
      await jobpost.close()
      await db.done()
    }
  }
  const limited = await run(false)
  const unlimited = await run(true)
  return limited == null || unlimited == null ? null : { limited, unlimited }
}

async function enqueueMany(jobpost: Jobpost, type: string, total: number, data: (n: number) => unknown = (n) => ({ n })) {
  const hooks = jobpost.pluginHooks('bench')
  for (let i = 0; i < total; i += CHUNK) {
    await hooks.enqueueJobs(Array.from({ length: Math.min(CHUNK, total - i) }, (_, n) => ({ type, data: data(i + n) })))
  }
}

/** Single `createJob` (sequential awaits) and bulk `enqueueJobs` (1,000 per call). */
async function creates(target: DatabaseTarget, w: Workload): Promise<{ singlePerSec: number; bulkPerSec: number }> {
  const jobpost = await openJobpost(target)
  try {
    const hooks = jobpost.pluginHooks('bench')
    let start = performance.now()
    for (let i = 0; i < w.singles; i++) await hooks.createJob({ name: 'Bench create', type: 'bench-create', data: { n: i } })
    const singlePerSec = w.singles / ((performance.now() - start) / 1000)
    start = performance.now()
    await enqueueMany(jobpost, 'bench-create', w.bulk)
    const bulkPerSec = w.bulk / ((performance.now() - start) / 1000)
    return { singlePerSec, bulkPerSec }
  } finally {
    await jobpost.close()
  }
}

/** No-op jobs at concurrency 10 in this process, then enqueue→start at w.perSecond. */
async function processInProcess(target: DatabaseTarget, w: Workload) {
  const jobpost = await openJobpost(target)
  try {
    const hooks = jobpost.pluginHooks('bench')
    const latencies: number[] = []
    const runs = new Map<string, number>()
    hooks.registerJobProcessor(
      NOOP,
      async (job) => {
        const t0 = (job.data as { t0?: number } | null)?.t0
        if (typeof t0 === 'number') latencies.push(performance.now() - t0)
        runs.set(job.jobId, (runs.get(job.jobId) ?? 0) + 1)
        return null
      },
      { concurrency: 10 },
    )
    let completed = 0
    hooks.on('job:completed', () => void completed++)
    await enqueueMany(jobpost, NOOP, w.process)
    jobpost.runtime.start()
    const processMs = await timeUntil(() => completed >= w.process, 'Jobpost processing')
    const { p50, p99 } = await pacedLatency({
      count: w.latencyJobs,
      perSecond: w.perSecond,
      enqueue: (t0) => hooks.enqueueJob({ type: NOOP, data: { t0 } }),
      latencies,
    })
    const doubleRuns = [...runs.values()].filter((n) => n > 1).length
    return { processedPerSec: w.process / (processMs / 1000), latencyP50: p50, latencyP99: p99, doubleRuns }
  } finally {
    await jobpost.close()
  }
}

export async function jobpostOnSqlite(w: Workload): Promise<SystemFigures> {
  const dir = tempDir('queue')
  try {
    const created = await creates({ dialect: 'sqlite', filename: dir.file('create.sqlite') }, w)
    const processed = await processInProcess({ dialect: 'sqlite', filename: dir.file('process.sqlite') }, w)
    return { ...created, ...processed }
  } finally {
    dir.remove()
  }
}

/** One instance: creates, processing and latency in this process, as the peers run. */
export async function jobpostOnPostgres(w: Workload): Promise<SystemFigures | null> {
  let database = await freshDatabase('jobpost')
  if (!database) return null
  try {
    const created = await creates({ dialect: 'postgres', connectionString: database.url }, w)
    database = (await freshDatabase('jobpost'))!
    const processed = await processInProcess({ dialect: 'postgres', connectionString: database.url }, w)
    return { ...created, ...processed }
  } finally {
    await database.drop().catch(() => undefined)
  }
}

// -------------------------------------------------------------------------------------------

interface WorkerChild {
  done: number
  send(line: string): void
  /** Resolves with the child's closing report after STOP. */
  stop(): Promise<{ runs: Record<string, number>; latencies: number[] }>
  kill(): void
}

async function startWorkerChild(url: string, index: number): Promise<WorkerChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./pgWorker.ts', import.meta.url))], {
    env: { ...process.env, BENCH_WORKER_DB: url, BENCH_WORKER_TYPE: NOOP },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const state: WorkerChild = {
    done: 0,
    send: (line) => void child.stdin!.write(`${line}\n`),
    stop: () => {
      state.send('STOP')
      return final
    },
    kill: () => void child.kill('SIGKILL'),
  }
  let ready!: () => void
  let failed!: (error: Error) => void
  const readyPromise = new Promise<void>((resolve, reject) => {
    ready = resolve
    failed = reject
  })
  let settle!: (value: { runs: Record<string, number>; latencies: number[] }) => void
  const final = new Promise<{ runs: Record<string, number>; latencies: number[] }>((resolve) => (settle = resolve))
  child.once('exit', (code) => failed(new Error(`worker ${index} exited (${code}) before it was ready`)))
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'READY') return ready()
    let message: { done?: number; runs?: Record<string, number>; latencies?: number[] }
    try {
      message = JSON.parse(line) as typeof message
    } catch {
      return log(`worker ${index}: ${line.slice(0, 200)}`)
    }
    if (message.runs) settle({ runs: message.runs, latencies: message.latencies ?? [] })
    else if (typeof message.done === 'number') state.done = message.done
  })
  await readyPromise
  return state
}

/**
 * `instances` worker processes (each one Jobpost runtime, concurrency 10) share one database;
 * this process only enqueues, as a web server would. Double runs: jobs whose processor ran more
 * than once in all the workers together.
 */
export async function jobpostOnPostgresCluster(w: Workload, instances: number): Promise<SystemFigures | null> {
  const database = await freshDatabase(`jobpost_${instances}`)
  if (!database) return null
  const jobpost = await openJobpost({ dialect: 'postgres', connectionString: database.url })
  const children: WorkerChild[] = []
  try {
    for (let i = 0; i < instances; i++) children.push(await startWorkerChild(database.url, i))
    await enqueueMany(jobpost, NOOP, w.process)
    const done = () => children.reduce((sum, child) => sum + child.done, 0)
    for (const child of children) child.send('START')
    const processMs = await timeUntil(() => done() >= w.process, `Jobpost processing on ${instances} instances`)
    const hooks = jobpost.pluginHooks('bench')
    const latencies: number[] = []
    // The workers report their latencies at the end: count on their `done` instead.
    const target = w.process + w.latencyJobs
    const sends: Promise<unknown>[] = []
    const start = performance.now()
    let sent = 0
    while (sent < w.latencyJobs) {
      const due = Math.min(w.latencyJobs, Math.floor(((performance.now() - start) * w.perSecond) / 1000) + 1)
      while (sent < due) {
        sends.push(hooks.enqueueJob({ type: NOOP, data: { t0: epochNow() } }))
        sent++
      }
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    await Promise.all(sends)
    await waitFor(() => done() >= target, 120_000, 'latency jobs on the workers')
    const reports = await Promise.all(children.map((child) => child.stop()))
    const runs = new Map<string, number>()
    for (const report of reports) {
      for (const [jobId, n] of Object.entries(report.runs)) runs.set(jobId, (runs.get(jobId) ?? 0) + n)
      latencies.push(...report.latencies)
    }
    const doubleRuns = [...runs.values()].filter((n) => n > 1).length
    if (runs.size !== target) log(`warning: ${runs.size} distinct jobs ran, expected ${target}`)
    const sorted = latencies.sort((a, b) => a - b)
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
    const perWorker = reports.map((report) => Object.keys(report.runs).length)
    return {
      bulkPerSec: null,
      singlePerSec: null,
      processedPerSec: w.process / (processMs / 1000),
      latencyP50: at(50),
      latencyP99: at(99),
      doubleRuns,
      note: `jobs per worker: ${perWorker.join(' / ')}`,
    }
  } finally {
    for (const child of children) child.kill()
    await jobpost.close()
    await database.drop().catch(() => undefined)
  }
}
