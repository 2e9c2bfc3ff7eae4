/**
 * `npm run bench`: Jobpost's figures against their baselines, measured in the same run.
 * One JSON line per figure on stdout, then a table; progress notes go to stderr.
 * BENCH_SCALE (default 1) scales every count, e.g. BENCH_SCALE=0.05 for a quick run.
 * BENCH_ONLY=create,process,fanout,list,rss runs some sections only.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import os from 'node:os'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import vm from 'node:vm'
import { testConfig, type DatabaseTarget } from '../core/config.js'
import { createJobpost, type Jobpost } from '../core/createJobpost.js'
import { jobPost, seedJobs } from './seed.js'
import { rawSqliteInserts } from './rawSqlite.js'
import { benchBullmq, benchPgBoss, freshDatabase, pacedLatency, type QueueFigures } from './peers.js'
import { allFigures, log, median, percentile, printTable, report, rssMb, scaled, SCALE, sleep, tempDir, timed, waitFor } from './lib.js'

const ONLY = process.env.BENCH_ONLY?.split(',').map((part) => part.trim())
const runs = (section: string) => !ONLY || ONLY.includes(section)
const PASSWORD = 'bench password 123'
const DAY_MS = 24 * 3600 * 1000

async function openJobpost(target: DatabaseTarget, options: { listen?: boolean } = {}): Promise<Jobpost & { url: string }> {
  const jobpost = await createJobpost(testConfig({ database: target, workerConcurrency: 10, logLevel: 'silent' }), { runWorker: false })
  const url = options.listen ? await jobpost.listen() : ''
  return Object.assign(jobpost, { url })
}

async function adminToken(jobpost: Jobpost & { url: string }): Promise<string> {
  const email = `bench-${Date.now()}@example.com`
  await jobpost.auth.createUser({ email, password: PASSWORD, roles: ['administrator'] })
  const res = await fetch(`${jobpost.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  })
  const body = (await res.json()) as { data: { token: string } }
  return body.data.token
}

// -------------------------------------------------------------------------------------------
// 1. createJob one at a time, and bulk enqueue

async function benchCreate(bullmq: QueueFigures | null) {
  const singles = scaled(3000, 200)
  const bulk = scaled(20_000, 1000)
  const dir = tempDir('create')
  try {
    const jobpost = await openJobpost({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') })
    const hooks = jobpost.pluginHooks('bench')
    const singleMs = await timed(async () => {
      for (let i = 0; i < singles; i++) await hooks.createJob({ name: 'Bench create', type: 'bench-noop', metadata: { n: i } })
    })
    const bulkMs = await timed(async () => {
      for (let i = 0; i < bulk; i += 1000) {
        await hooks.enqueueJobs(Array.from({ length: Math.min(1000, bulk - i) }, (_, n) => ({ type: 'bench-noop', data: { n } })))
      }
    })
    await jobpost.close()
    const now = new Date().toISOString()
    const raw = await rawSqliteInserts({
      file: dir.file('raw.sqlite'),
      single: Array.from({ length: singles }, () => jobPost({ status: 'pending', at: now })),
      bulk: Array.from({ length: bulk }, () => jobPost({ status: 'pending', at: now })),
      bulkChunk: 1000,
    })
    const single = singles / (singleMs / 1000)
    report({
      id: 'create.single',
      label: 'createJob, one at a time',
      value: single,
      unit: 'jobs/s',
      baselines: { 'raw better-sqlite3': raw.singlePerSec, 'BullMQ add': bullmq?.singleAddPerSec ?? null },
      target: '≥ BullMQ single add',
      met: bullmq?.singleAddPerSec ? single >= bullmq.singleAddPerSec : undefined,
    })
    report({
      id: 'create.bulk',
      label: 'enqueueJobs, 1,000 per call',
      value: bulk / (bulkMs / 1000),
      unit: 'jobs/s',
      baselines: { 'raw better-sqlite3': raw.bulkPerSec, 'BullMQ addBulk': bullmq?.bulkAddPerSec ?? null },
    })
  } finally {
    dir.remove()
  }
}

// -------------------------------------------------------------------------------------------
// 2. no-op jobs end to end at concurrency 10, and enqueue→start latency

async function jobpostProcessing(target: DatabaseTarget, options: { process: number; latencyJobs: number; perSecond: number }): Promise<QueueFigures> {
  const jobpost = await openJobpost(target)
  try {
    const hooks = jobpost.pluginHooks('bench')
    const latencies: number[] = []
    hooks.registerJobProcessor(
      'bench-noop',
      async (job) => {
        const t0 = (job.data as { t0?: number } | null)?.t0
        if (typeof t0 === 'number') latencies.push(performance.now() - t0)
        return null
      },
      { concurrency: 10 },
    )
    let completed = 0
    hooks.on('job:completed', () => void completed++)
    for (let i = 0; i < options.process; i += 1000) {
      await hooks.enqueueJobs(Array.from({ length: Math.min(1000, options.process - i) }, (_, n) => ({ type: 'bench-noop', data: { n } })))
    }
    const start = performance.now()
    jobpost.runtime.start()
    await waitFor(() => completed >= options.process, 900_000, 'Jobpost processing')
    const processedPerSec = options.process / ((performance.now() - start) / 1000)
    const { p50, p99 } = await pacedLatency({
      count: options.latencyJobs,
      perSecond: options.perSecond,
      enqueue: (t0) => hooks.enqueueJob({ type: 'bench-noop', data: { t0 } }),
      latencies,
      timeoutMs: 120_000,
    })
    return { processedPerSec, latencyP50: p50, latencyP99: p99 }
  } finally {
    await jobpost.close()
  }
}

async function benchProcessing(bullmq: QueueFigures | null, pgboss: QueueFigures | null) {
  const workload = { process: scaled(10_000, 500), latencyJobs: scaled(2000, 200), perSecond: 200 }
  const dir = tempDir('process')
  let sqlite: QueueFigures
  try {
    sqlite = await jobpostProcessing({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') }, workload)
  } finally {
    dir.remove()
  }
  let onPostgres: QueueFigures | null = null
  const database = await freshDatabase('jobpost')
  if (database) {
    try {
      // At a pace it keeps up with on a busy 2-core machine (at 200/s its backlog would grow).
      onPostgres = await jobpostProcessing({ dialect: 'postgres', connectionString: database.url }, { ...workload, perSecond: 20, latencyJobs: scaled(400, 100) })
    } finally {
      await database.drop()
    }
  }
  const ratio = (peer: QueueFigures | null) => (peer ? sqlite.processedPerSec / peer.processedPerSec : null)
  report({
    id: 'process.throughput',
    label: 'no-op jobs end to end, concurrency 10',
    value: sqlite.processedPerSec,
    unit: 'jobs/s',
    baselines: {
      'Jobpost on PostgreSQL': onPostgres?.processedPerSec ?? null,
      BullMQ: bullmq?.processedPerSec ?? null,
      'pg-boss': pgboss?.processedPerSec ?? null,
      'ratio to BullMQ': ratio(bullmq),
      'ratio to pg-boss': ratio(pgboss),
    },
    target: '≥ BullMQ and ≥ 3× pg-boss',
    met: bullmq && pgboss ? sqlite.processedPerSec >= bullmq.processedPerSec && sqlite.processedPerSec >= 3 * pgboss.processedPerSec : undefined,
  })
  report({
    id: 'process.latency.p50',
    label: `enqueue→start p50 (${workload.perSecond} jobs/s)`,
    value: sqlite.latencyP50,
    unit: 'ms',
    baselines: { 'Jobpost on PostgreSQL (20 jobs/s)': onPostgres?.latencyP50 ?? null, BullMQ: bullmq?.latencyP50 ?? null, 'pg-boss (10 jobs/s)': pgboss?.latencyP50 ?? null },
    target: '≤ 5 ms',
    met: sqlite.latencyP50 <= 5,
  })
  report({
    id: 'process.latency.p99',
    label: `enqueue→start p99 (${workload.perSecond} jobs/s)`,
    value: sqlite.latencyP99,
    unit: 'ms',
    baselines: { 'Jobpost on PostgreSQL (20 jobs/s)': onPostgres?.latencyP99 ?? null, BullMQ: bullmq?.latencyP99 ?? null, 'pg-boss (10 jobs/s)': pgboss?.latencyP99 ?? null },
    target: '≤ 20 ms',
    met: sqlite.latencyP99 <= 20,
  })
}

// -------------------------------------------------------------------------------------------
// 3. progress fan-out: one job, 1,000 updates a second, 200 WebSocket clients

async function benchFanout() {
  const clients = 200
  const seconds = Math.max(2, Math.round(5 * Math.min(1, SCALE * 4)))
  const dir = tempDir('fanout')
  const jobpost = await openJobpost({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') }, { listen: true })
  let child: ChildProcess | undefined
  try {
    const token = await adminToken(jobpost)
    const hooks = jobpost.pluginHooks('bench')
    const handle = await hooks.createJob({ name: 'Fan-out', type: 'bench-progress' })
    // The clients live in another process, as they would: their parsing does not slow the server.
    child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./wsClients.ts', import.meta.url))], {
      env: { ...process.env, WS_URL: `${jobpost.url.replace('http', 'ws')}/ws`, WS_TOKEN: token, WS_JOB_ID: handle.jobId, WS_CLIENTS: String(clients) },
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const nextLine = async () => String((await lines.next()).value ?? '')
    if ((await nextLine()) !== 'READY') throw new Error('The WebSocket clients did not connect')
    await handle.start()
    child.stdin!.write('START\n')
    const now = () => performance.timeOrigin + performance.now()
    let updates = 0
    const from = performance.now()
    while (performance.now() < from + seconds * 1000) {
      const due = from + updates // one update per ms
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      await handle.updateProgress(updates % 100, { t: now() })
      updates++
      // better-sqlite3 is synchronous: without a turn of the event loop, no timer (the
      // coalesced sends) would fire until the loop ends. A real processor yields on its own I/O.
      await new Promise((resolve) => setImmediate(resolve))
    }
    const elapsed = (performance.now() - from) / 1000
    await sleep(300) // the last coalesced update
    child.stdin!.write('STOP\n')
    const { received, latencies } = JSON.parse(await nextLine()) as { received: number[]; latencies: number[] }
    await handle.complete()
    const perClient = median(received) / elapsed
    const p99 = percentile(latencies, 99)
    report({
      id: 'fanout.rate',
      label: `WS job_update per client per s (${clients} clients, ${Math.round(updates / elapsed)} updates/s)`,
      value: perClient,
      unit: 'msg/s',
      target: '≤ 10 per job per client',
      met: perClient <= 10.5,
      note: `${updates} updates in ${elapsed.toFixed(1)} s`,
    })
    report({
      id: 'fanout.p99',
      label: 'progress update → WS receipt p99',
      value: p99,
      unit: 'ms',
      baselines: { p50: percentile(latencies, 50) },
      target: '≤ 50 ms',
      met: p99 <= 50,
    })
  } finally {
    child?.kill()
    await jobpost.close()
    dir.remove()
  }
}

// -------------------------------------------------------------------------------------------
// 4. the list and cleanup, with 100k and 1M jobs in the database

async function benchListAndCleanup(size: number, oldJobs: number, label: string) {
  const dir = tempDir('list')
  const jobpost = await openJobpost({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') }, { listen: true })
  try {
    const now = Date.now()
    const runningEvery = Math.max(2, Math.floor(size / 500))
    log(`seeding ${size} jobs (${oldJobs} old, ~${Math.floor(size / runningEvery)} running)...`)
    const seedMs = await timed(() =>
      seedJobs(jobpost.store, size, (i) => {
        if (i < oldJobs) return { status: 'completed', at: new Date(now - 90 * DAY_MS + i).toISOString() }
        if (i % runningEvery === 0) return { status: 'running', at: new Date(now - 60_000).toISOString() }
        return { status: 'completed', at: new Date(now - DAY_MS + i).toISOString() }
      }, 10_000),
    )
    log(`seeded in ${(seedMs / 1000).toFixed(1)} s`)
    await jobpost.store.optimize()
    const token = await adminToken(jobpost)
    const headers = { authorization: `Bearer ${token}` }
    const get = () => fetch(`${jobpost.url}/api/v1/jobs?status=running&limit=50`, { headers }).then((res) => res.json())
    for (let i = 0; i < 3; i++) await get() // warm
    const samples: number[] = []
    let total = 0
    for (let i = 0; i < 30; i++) {
      const start = performance.now()
      const body = (await get()) as { meta: { total: number } }
      samples.push(performance.now() - start)
      total = body.meta.total
    }
    const listMs = median(samples)
    report({
      id: `list.${label}`,
      label: `GET /api/v1/jobs?status=running&limit=50 at ${label} jobs (total ${total})`,
      value: listMs,
      unit: 'ms',
      baselines: { p95: percentile(samples, 95) },
      target: size >= 1_000_000 ? '≤ 10 ms' : undefined,
      met: size >= 1_000_000 ? listMs <= 10 : undefined,
    })
    let deleted = 0
    const cleanupMs = await timed(async () => {
      const res = await fetch(`${jobpost.url}/api/v1/jobs/cleanup?daysOld=30`, { method: 'DELETE', headers })
      deleted = ((await res.json()) as { data: { deleted: number } }).data.deleted
    })
    const per100k = (cleanupMs / Math.max(1, deleted)) * 100_000
    report({
      id: `cleanup.${label}`,
      label: `cleanup of ${deleted} old jobs at ${label} jobs`,
      value: cleanupMs / 1000,
      unit: 's',
      baselines: { 's per 100k': per100k / 1000 },
      target: '≤ 2 s per 100k',
      met: per100k <= 2000,
    })
  } finally {
    await jobpost.close()
    dir.remove()
  }
}

// -------------------------------------------------------------------------------------------
// 5. RSS before and after 100k jobs

async function benchRss() {
  const total = scaled(100_000, 2000)
  const batch = Math.min(5000, total)
  const dir = tempDir('rss')
  const jobpost = await openJobpost({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') })
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  try {
    const hooks = jobpost.pluginHooks('bench')
    hooks.registerJobProcessor('bench-noop', async () => null, { concurrency: 10 })
    let completed = 0
    hooks.on('job:completed', () => void completed++)
    jobpost.runtime.start()
    const run = async (count: number) => {
      const target = completed + count
      for (let i = 0; i < count; i += 1000) {
        await hooks.enqueueJobs(Array.from({ length: Math.min(1000, count - i) }, (_, n) => ({ type: 'bench-noop', data: { n } })))
      }
      await waitFor(() => completed >= target, 900_000, 'RSS jobs')
    }
    await run(Math.min(2000, batch)) // warm up caches and JIT
    gc()
    await sleep(100)
    const before = rssMb()
    for (let done = 0; done < total; done += batch) {
      await run(Math.min(batch, total - done))
      if (done % (batch * 4) === 0) log(`rss: ${done + batch}/${total} jobs, ${rssMb().toFixed(0)} MB`)
    }
    gc()
    await sleep(100)
    const after = rssMb()
    report({
      id: 'rss',
      label: `RSS before → after ${total} jobs`,
      value: after,
      unit: 'MB',
      baselines: { before, growth: after - before },
      target: 'flat (growth ≤ 25 MB)',
      met: after - before <= 25,
    })
  } finally {
    await jobpost.close()
    dir.remove()
  }
}

// -------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now()
  log(`scale ${SCALE}; ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GB, Node ${process.version}`)
  const peerWorkload = { process: scaled(10_000, 500), latencyJobs: scaled(2000, 200), perSecond: 200 }
  let bullmq: QueueFigures | null = null
  let pgboss: QueueFigures | null = null
  if (runs('create') || runs('process')) {
    log('BullMQ...')
    bullmq = await benchBullmq({ singles: scaled(3000, 200), bulk: scaled(20_000, 1000), ...peerWorkload }).catch((error) => {
      log(`BullMQ skipped: ${(error as Error).message}`)
      return null
    })
    if (!bullmq) log('BullMQ skipped: no Redis answers')
  }
  if (runs('process')) {
    log('pg-boss...')
    // pg-boss runs at most 20 jobs/s with 10 polling workers: fewer jobs, and a pace it can keep
    // (at 200/s its backlog, and so its latency, would grow without bound).
    pgboss = await benchPgBoss({ process: scaled(1000, 100), latencyJobs: scaled(200, 50), perSecond: 10 }).catch((error) => {
      log(`pg-boss skipped: ${(error as Error).message}`)
      return null
    })
    if (!pgboss) log('pg-boss skipped: no PostgreSQL answers')
  }
  if (runs('create')) {
    log('create...')
    await benchCreate(bullmq)
  }
  if (runs('process')) {
    log('processing...')
    await benchProcessing(bullmq, pgboss)
  }
  if (runs('fanout')) {
    log('fan-out...')
    await benchFanout()
  }
  if (runs('list')) {
    log('list and cleanup at 100k...')
    await benchListAndCleanup(scaled(100_000, 2000), scaled(50_000, 1000), SCALE === 1 ? '100k' : `${scaled(100_000, 2000)}`)
    log('list and cleanup at 1M...')
    await benchListAndCleanup(scaled(1_000_000, 5000), scaled(100_000, 1000), SCALE === 1 ? '1M' : `${scaled(1_000_000, 5000)}`)
  }
  if (runs('rss')) {
    log('RSS...')
    await benchRss()
  }
  printTable()
  const missed = allFigures().filter((figure) => figure.met === false)
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; ${missed.length} target(s) missed`)
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
