/**
 * Job logs (issue 15): what logging costs. Run alone: `npx tsx bench/logs.ts`
 * (BENCH_LOGS_JOBS, BENCH_LOGS_SECONDS, BENCH_LOGS_RUNS; BENCH_LOGS_DB=postgres for the test PostgreSQL).
 *
 * 1. Flood: one job logs 10,000 lines a second (100 every 10 ms) for BENCH_LOGS_SECONDS; the event
 *    loop's delay (perf_hooks.monitorEventLoopDelay) while it runs must stay under 50 ms, and every
 *    line must be stored (or counted as dropped by the 10,000-line cap).
 * 2. Cost of one line per job: no-op jobs end to end, concurrency 10, with and without one
 *    `ctx.log` call each, alternated BENCH_LOGS_RUNS times on fresh databases; medians compared
 *    (target: under 10% slower).
 * Prints one JSON line per figure, then a table.
 */
import os from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { DatabaseTarget } from '../core/config.js'
import { createJobpost, type Jobpost } from '../core/createJobpost.js'
import { jobLogsFor } from '../core/logs/index.js'
import { benchConfig } from './http.js'
import { freshDatabase } from './peers.js'
import { median, round, tempDir } from './lib.js'

const JOBS = Number(process.env.BENCH_LOGS_JOBS ?? 3000)
const SECONDS = Number(process.env.BENCH_LOGS_SECONDS ?? 5)
const RUNS = Number(process.env.BENCH_LOGS_RUNS ?? 3)
const DIALECT = process.env.BENCH_LOGS_DB === 'postgres' ? 'postgres' : 'sqlite'
const figures: { figure: string; value: number | string; unit: string; target?: string; met?: boolean }[] = []

function report(figure: (typeof figures)[number]) {
  figures.push(figure)
  console.log(JSON.stringify({ bench: 'logs', dialect: DIALECT, ...figure }))
}

async function database(label: string): Promise<{ target: DatabaseTarget; done(): Promise<void> }> {
  if (DIALECT === 'postgres') {
    const db = await freshDatabase(`logs_${label}`)
    if (!db) throw new Error('No PostgreSQL answers for BENCH_LOGS_DB=postgres.')
    return { target: { dialect: 'postgres', connectionString: db.url }, done: () => db.drop() }
  }
  const dir = tempDir(`logs-${label}`)
  return { target: { dialect: 'sqlite', filename: dir.file('bench.sqlite') }, done: async () => dir.remove() }
}

async function open(target: DatabaseTarget): Promise<Jobpost> {
  return createJobpost(benchConfig(target, { unlimited: true, concurrency: 10 }), { runWorker: false })
}

/**
 * One job, 10,000 lines a second for SECONDS; the loop's delay meanwhile. `control`: the same job
 * and timers without the log calls, so that a busy machine's own delay can be told apart.
 */
async function flood(control = false) {
  const db = await database(control ? 'control' : 'flood')
  const jobpost = await open(db.target)
  try {
    const hooks = jobpost.pluginHooks('bench')
    const perTick = 100
    const total = 10_000 * SECONDS
    let startupSeconds = 0
    hooks.registerJobProcessor('bench-flood', async (_job, { log }) => {
      startupSeconds = (performance.now() - started) / 1000
      let n = 0
      const begun = performance.now()
      await new Promise<void>((resolve) => {
        // Every 10 ms, as many lines as keep the pace at 10,000 a second (a late timer catches up).
        const timer = setInterval(() => {
          const due = Math.min(total, Math.floor((performance.now() - begun) * 10) + perTick)
          if (control) n = due
          while (n < due) log(`line ${++n} of the flood`, { n, step: 'flood' }, n % 100 === 0 ? 'warn' : 'info')
          if (n >= total) {
            clearInterval(timer)
            resolve()
          }
        }, 10)
      })
      return { n }
    })
    const job = await hooks.enqueueJob({ type: 'bench-flood', data: {} })
    const delay = monitorEventLoopDelay({ resolution: 1 })
    let started = 0
    let finished = false
    hooks.on('job:completed', ({ job: done }) => void (done.jobId === job.jobId && (finished = true)))
    started = performance.now()
    delay.enable()
    jobpost.runtime.start()
    while (!finished) await new Promise((resolve) => setTimeout(resolve, 20))
    const logs = jobLogsFor(jobpost.jobs)!
    await logs.flush()
    delay.disable()
    const seconds = (performance.now() - started) / 1000 - startupSeconds
    const record = (await jobpost.jobs.getJobRecord(job.jobId))!
    const state = await logs.store.logState(record.id)
    const stored = Number((await jobpost.db.knex('job_logs').where({ post_id: record.id }).count({ n: '*' }))[0]!.n)
    const maxMs = delay.max / 1e6
    if (control) {
      report({ figure: 'control (same job and timers, no log calls): event-loop delay max', value: round(maxMs), unit: 'ms' })
      report({ figure: 'control: event-loop delay p99', value: round(delay.percentile(99) / 1e6), unit: 'ms' })
      return
    }
    report({ figure: 'flood lines/s (one job)', value: round(total / seconds), unit: 'lines/s', target: '≥ 10,000 offered' })
    report({ figure: 'flood: event-loop delay max', value: round(maxMs), unit: 'ms', target: '≤ 50', met: maxMs <= 50 })
    report({ figure: 'flood: event-loop delay p99', value: round(delay.percentile(99) / 1e6), unit: 'ms' })
    report({
      figure: 'flood: lines accounted for (stored + dropped by the cap)',
      value: `${stored} + ${state.dropped} of ${total}`,
      unit: 'lines',
      met: stored + state.dropped === total && state.lastSeq === total,
    })
  } finally {
    await jobpost.close()
    await db.done()
  }
}

/** No-op jobs end to end, with `lines` log calls per job: jobs a second, and this process's CPU µs per job. */
async function throughput(lines: number, run: number): Promise<{ perSec: number; cpuUsPerJob: number }> {
  const db = await database(`noop_${lines}_${run}`)
  const jobpost = await open(db.target)
  try {
    const hooks = jobpost.pluginHooks('bench')
    hooks.registerJobProcessor(
      'bench-noop-log',
      async (job, { log }) => {
        for (let i = 0; i < lines; i++) log('processing', { n: (job.data as { n: number }).n })
        return null
      },
      { concurrency: 10 },
    )
    for (let i = 0; i < JOBS; i += 1000) {
      await hooks.enqueueJobs(Array.from({ length: Math.min(1000, JOBS - i) }, (_, n) => ({ type: 'bench-noop-log', data: { n: i + n } })))
    }
    let completed = 0
    hooks.on('job:completed', () => void completed++)
    const started = performance.now()
    const cpu = process.cpuUsage()
    jobpost.runtime.start()
    while (completed < JOBS) await new Promise((resolve) => setTimeout(resolve, 5))
    // The lines count too: the time includes writing the last of them.
    await jobLogsFor(jobpost.jobs)!.flush()
    const used = process.cpuUsage(cpu)
    return { perSec: JOBS / ((performance.now() - started) / 1000), cpuUsPerJob: (used.user + used.system) / JOBS }
  } finally {
    await jobpost.close()
    await db.done()
  }
}

async function main() {
  report({ figure: 'load average at start (1 min, machine-wide)', value: round(os.loadavg()[0]!), unit: `on ${os.cpus().length} CPUs` })
  await flood(true)
  await flood()
  const without: { perSec: number; cpuUsPerJob: number }[] = []
  const withLine: { perSec: number; cpuUsPerJob: number }[] = []
  for (let run = 0; run < RUNS; run++) {
    // Alternated, so that a busy moment of a shared machine hurts both alike.
    without.push(await throughput(0, run))
    withLine.push(await throughput(1, run))
    console.error(`run ${run + 1}/${RUNS}: ${round(without.at(-1)!.perSec)} vs ${round(withLine.at(-1)!.perSec)} jobs/s`)
  }
  const base = median(without.map((r) => r.perSec))
  const logged = median(withLine.map((r) => r.perSec))
  const cost = (1 - logged / base) * 100
  const baseCpu = median(without.map((r) => r.cpuUsPerJob))
  const loggedCpu = median(withLine.map((r) => r.cpuUsPerJob))
  const cpuCost = (loggedCpu / baseCpu - 1) * 100
  report({ figure: `no-op jobs/s (${JOBS} jobs, concurrency 10, median of ${RUNS})`, value: round(base), unit: 'jobs/s' })
  report({ figure: 'same, one log line per job', value: round(logged), unit: 'jobs/s' })
  report({ figure: 'cost of one line per job (throughput)', value: round(cost), unit: '%', target: '< 10', met: cost < 10 })
  report({ figure: 'CPU per no-op job (this process, median)', value: round(baseCpu), unit: 'µs' })
  report({ figure: 'same, one log line per job', value: round(loggedCpu), unit: 'µs' })
  report({ figure: 'cost of one line per job (CPU)', value: round(cpuCost), unit: '%', target: '< 10', met: cpuCost < 10 })
  console.log('\n| figure | value | target | |\n|---|---|---|---|')
  for (const f of figures) console.log(`| ${f.figure} | ${f.value} ${f.unit} | ${f.target ?? '–'} | ${f.met === undefined ? '' : f.met ? 'met' : 'missed'} |`)
}

await main()
