/**
 * `npm run bench`: Jobpost against BullMQ, pg-boss, graphile-worker and raw better-sqlite3 in the
 * same run, then the admin at BENCH_ADMIN_JOBS jobs, then RSS and WebSocket fan-out.
 * One JSON line per figure on stdout, then the tables; progress notes go to stderr.
 *
 *   BENCH_QUICK=1          small counts (a few minutes; indicative figures only)
 *   BENCH_SCALE=0.2        scales the queue workloads (default 1; 0.2 in quick mode)
 *   BENCH_ADMIN_JOBS=N     jobs in the admin database (default 1,000,000; 20,000 in quick mode)
 *   BENCH_ONLY=queue,admin,rss,fanout   some sections only
 *   BENCH_SYSTEMS=bullmq,pgboss,graphile,raw,sqlite,postgres,cluster,limits.SQLite,limits.PostgreSQL   some rows only
 *   BENCH_REPEAT=n         each queue row n times, keeping each figure's best (default 1)
 *   BENCH_LIMITS=default   the queue rows with the default per-owner creation limits (default: off)
 *
 * Jobpost is driven through its public surfaces only (createJobpost, pluginHooks, the REST API).
 */
import os from 'node:os'
import { benchAdmin } from './admin.js'
import { benchFanout } from './fanout.js'
import { jobpostOnPostgres, jobpostOnPostgresCluster, jobpostOnSqlite, limitsCost } from './jobpostQueue.js'
import { allFigures, log, printSystems, printTable, QUICK, report, SCALE, scaled, systemRow, tempDir, type SystemFigures, type Workload } from './lib.js'
import { benchBullmq, benchGraphile, benchPgBoss, freshDatabase } from './peers.js'
import { rawSqlite } from './rawSqlite.js'
import { benchRss } from './rss.js'

const ONLY = process.env.BENCH_ONLY?.split(',').map((part) => part.trim())
const runs = (section: string) => !ONLY || ONLY.includes(section)
const SYSTEMS = process.env.BENCH_SYSTEMS?.split(',').map((part) => part.trim())
const includes = (system: string) => !SYSTEMS || SYSTEMS.includes(system)

/** BENCH_REPEAT=n: each queue row runs n times; the row keeps each figure's best (noise only ever slows). */
const REPEAT = Math.max(1, Number(process.env.BENCH_REPEAT ?? 1) || 1)

function best(results: SystemFigures[]): SystemFigures | null {
  if (results.length === 0) return null
  const max = (pick: (f: SystemFigures) => number | null) => {
    const values = results.map(pick).filter((v): v is number => v != null && !Number.isNaN(v))
    return values.length ? Math.max(...values) : null
  }
  const min = (pick: (f: SystemFigures) => number) => Math.min(...results.map(pick))
  return {
    ...results[0]!,
    bulkPerSec: max((f) => f.bulkPerSec),
    singlePerSec: max((f) => f.singlePerSec),
    processedPerSec: max((f) => f.processedPerSec)!,
    latencyP50: min((f) => f.latencyP50),
    latencyP99: min((f) => f.latencyP99),
    doubleRuns: results.reduce((sum, f) => sum + (f.doubleRuns ?? 0), 0),
    note: [results[0]!.note, REPEAT > 1 ? `best of ${results.length}` : undefined].filter(Boolean).join('; ') || undefined,
  }
}

async function repeated(name: string, run: () => Promise<SystemFigures | null>): Promise<SystemFigures | null> {
  const results: SystemFigures[] = []
  for (let i = 0; i < REPEAT; i++) {
    const result = await attempt(REPEAT > 1 ? `${name} (${i + 1}/${REPEAT})` : name, run, name)
    if (result) results.push(result)
  }
  return best(results)
}

async function attempt<T>(name: string, run: () => Promise<T | null>, system = name): Promise<T | null> {
  if (!includes(system)) return null
  log(`${name}...`)
  const start = performance.now()
  try {
    const result = await run()
    log(`${name} done in ${((performance.now() - start) / 1000).toFixed(1)} s (load ${os.loadavg()[0]!.toFixed(1)})${result && typeof result === 'object' ? `: ${JSON.stringify(result)}` : ''}`)
    return result
  } catch (error) {
    log(`${name} failed: ${(error as Error).stack ?? error}`)
    return null
  }
}

const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && b > 0 ? a / b : null)
const x = (value: number | null) => (value == null ? 'n/a' : `${value.toFixed(2)}×`)

async function benchQueues() {
  const w: Workload = {
    singles: scaled(3000, 200),
    bulk: scaled(20_000, 2000),
    process: scaled(10_000, 1000),
    latencyJobs: scaled(2500, 500),
    perSecond: 500,
  }
  log(`queue workload: ${JSON.stringify(w)}`)
  const bullmq = await repeated('bullmq', () => benchBullmq(w))
  const pgboss = await repeated('pgboss', () => benchPgBoss(w))
  const graphile = await repeated('graphile', () => benchGraphile(w))
  const raw = await repeated('raw', async () => {
    const dir = tempDir('raw')
    try {
      return rawSqlite(dir.file('raw.sqlite'), w)
    } finally {
      dir.remove()
    }
  })
  const sqlite = await repeated('sqlite', () => jobpostOnSqlite(w))
  const postgres = await repeated('postgres', () => jobpostOnPostgres(w))
  const cluster = await repeated('cluster', () => jobpostOnPostgresCluster(w, 2))

  const rows: [string, SystemFigures | null][] = [
    ['BullMQ 6 (Redis; add / addBulk; concurrency 10)', bullmq],
    ['pg-boss 12 (send / insert; batchSize 10, LISTEN/NOTIFY)', pgboss],
    ['graphile-worker 0.18 (addJob / addJobs; concurrency 10, local queue)', graphile],
    ['raw better-sqlite3, 1 post + 12 meta rows, one transaction per step', raw],
    ['Jobpost on SQLite (createJob / enqueueJobs)', sqlite],
    ['Jobpost on PostgreSQL, 1 instance', postgres],
    ['Jobpost on PostgreSQL, 2 worker processes', cluster],
  ]
  for (const [name, figures] of rows) if (figures) systemRow(name, figures)

  if (sqlite) {
    const single = ratio(sqlite.singlePerSec, bullmq?.singlePerSec)
    report({ id: 'sqlite.single', label: 'SQLite: createJob, one at a time', value: sqlite.singlePerSec!, unit: 'jobs/s',
      baselines: { 'BullMQ add': bullmq?.singlePerSec ?? null, 'ratio to BullMQ': single }, target: '≥ 1.0× BullMQ add', met: single == null ? undefined : single >= 1 })
    const bulk = ratio(sqlite.bulkPerSec, bullmq?.bulkPerSec)
    report({ id: 'sqlite.bulk', label: 'SQLite: enqueueJobs, 1,000 per call', value: sqlite.bulkPerSec!, unit: 'jobs/s',
      baselines: { 'BullMQ addBulk': bullmq?.bulkPerSec ?? null, 'ratio to BullMQ': bulk }, target: '≥ 1.0× BullMQ addBulk', met: bulk == null ? undefined : bulk >= 1 })
    const processed = ratio(sqlite.processedPerSec, bullmq?.processedPerSec)
    report({ id: 'sqlite.process', label: 'SQLite: no-op jobs processed, concurrency 10', value: sqlite.processedPerSec, unit: 'jobs/s',
      baselines: { BullMQ: bullmq?.processedPerSec ?? null, 'ratio to BullMQ': processed }, target: '≥ 1.0× BullMQ', met: processed == null ? undefined : processed >= 1 })
    report({ id: 'sqlite.p50', label: `SQLite: enqueue→start p50 at ${w.perSecond}/s`, value: sqlite.latencyP50, unit: 'ms',
      baselines: { BullMQ: bullmq?.latencyP50 ?? null }, target: '≤ 2 ms', met: sqlite.latencyP50 <= 2 })
    report({ id: 'sqlite.p99', label: `SQLite: enqueue→start p99 at ${w.perSecond}/s`, value: sqlite.latencyP99, unit: 'ms',
      baselines: { BullMQ: bullmq?.latencyP99 ?? null }, target: '≤ 10 ms', met: sqlite.latencyP99 <= 10 })
  }
  if (postgres) {
    const processed = ratio(postgres.processedPerSec, pgboss?.processedPerSec)
    report({ id: 'pg.process', label: 'PostgreSQL, 1 instance: no-op jobs processed, concurrency 10', value: postgres.processedPerSec, unit: 'jobs/s',
      baselines: { 'pg-boss': pgboss?.processedPerSec ?? null, 'ratio to pg-boss': processed, 'graphile-worker': graphile?.processedPerSec ?? null },
      target: '≥ 1.0× pg-boss', met: processed == null ? undefined : processed >= 1 })
    report({ id: 'pg.p99', label: `PostgreSQL, 1 instance: enqueue→start p99 at ${w.perSecond}/s`, value: postgres.latencyP99, unit: 'ms',
      baselines: { p50: postgres.latencyP50, 'pg-boss': pgboss?.latencyP99 ?? null }, target: '≤ 20 ms', met: postgres.latencyP99 <= 20 })
  }
  if (cluster) {
    const scaling = ratio(cluster.processedPerSec, postgres?.processedPerSec)
    report({ id: 'pg2.process', label: 'PostgreSQL, 2 worker processes: no-op jobs processed', value: cluster.processedPerSec, unit: 'jobs/s',
      baselines: { '1 instance': postgres?.processedPerSec ?? null, 'ratio to 1 instance': scaling, 'ratio to pg-boss': ratio(cluster.processedPerSec, pgboss?.processedPerSec) },
      target: '≥ 1.7× one instance', met: scaling == null ? undefined : scaling >= 1.7, note: cluster.note })
    report({ id: 'pg2.p99', label: `PostgreSQL, 2 worker processes: enqueue→start p99 at ${w.perSecond}/s`, value: cluster.latencyP99, unit: 'ms',
      baselines: { p50: cluster.latencyP50 }, target: '≤ 20 ms', met: cluster.latencyP99 <= 20 })
    report({ id: 'pg2.double', label: 'PostgreSQL, 2 worker processes: jobs run twice', value: cluster.doubleRuns ?? 0, unit: 'jobs',
      target: '0', met: (cluster.doubleRuns ?? 0) === 0 })
  }
  const limits = async (name: string, target: Parameters<typeof limitsCost>[0]) => {
    const cost = await attempt(`limits.${name}`, () => limitsCost(target, scaled(5000, 1000), scaled(200, 50)))
    if (!cost) return
    report({ id: `limits.${name}`, label: `${name}: createJob with the default creation limits, ${scaled(5000, 1000)} of the plugin's jobs pending`, value: cost.limited, unit: 'jobs/s',
      baselines: { 'without limits': cost.unlimited, ratio: ratio(cost.limited, cost.unlimited) }, note: 'the queue rows above run without the per-owner limits (BENCH_LIMITS=default keeps them)' })
  }
  await limits('SQLite', async () => {
    const dir = tempDir('limits')
    return { target: { dialect: 'sqlite', filename: dir.file('limits.sqlite') }, done: async () => dir.remove() }
  })
  await limits('PostgreSQL', async () => {
    const database = await freshDatabase('jobpost_limits')
    return database && { target: { dialect: 'postgres', connectionString: database.url }, done: () => database.drop() }
  })
  log(`ratios: SQLite processed ${x(ratio(sqlite?.processedPerSec, bullmq?.processedPerSec))} BullMQ; PostgreSQL ${x(ratio(postgres?.processedPerSec, pgboss?.processedPerSec))} pg-boss; 2 instances ${x(ratio(cluster?.processedPerSec, postgres?.processedPerSec))} one`)
}

async function main() {
  const started = Date.now()
  log(`${QUICK ? 'quick mode; ' : ''}scale ${SCALE}; ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GB, Node ${process.version}; load ${os.loadavg().map((n) => n.toFixed(1)).join(' ')}`)
  if (runs('queue')) await benchQueues()
  if (runs('admin')) await attempt('admin', () => benchAdmin())
  if (runs('rss')) await attempt('rss', () => benchRss())
  if (runs('fanout')) await attempt('fanout', () => benchFanout())
  printSystems()
  printTable()
  const missed = allFigures().filter((figure) => figure.met === false)
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; ${missed.length} target(s) missed; load ${os.loadavg().map((n) => n.toFixed(1)).join(' ')}`)
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
