/**
 * Child process of the multi-instance bench: one Jobpost worker (no HTTP) on BENCH_WORKER_DB,
 * a no-op processor for BENCH_WORKER_TYPE at concurrency 10. Prints READY once open; on `START`
 * starts its runtime and prints `{"done": n}` (completed jobs) every 20 ms while it changes; on
 * `STOP` prints `{"runs": {jobId: times}, "latencies": [ms]}` (start − `data.t0`, epoch ms) and exits.
 */
import readline from 'node:readline'
import { createJobpost } from '../core/createJobpost.js'
import { benchConfig } from './http.js'

const url = process.env.BENCH_WORKER_DB!
const type = process.env.BENCH_WORKER_TYPE ?? 'bench-noop'
const epochNow = () => performance.timeOrigin + performance.now()

const jobpost = await createJobpost(
  benchConfig({ dialect: 'postgres', connectionString: url }),
  { runWorker: false, serveHttp: false },
)
const hooks = jobpost.pluginHooks('bench')
const runs: Record<string, number> = {}
const latencies: number[] = []
hooks.registerJobProcessor(
  type,
  async (job) => {
    const t0 = (job.data as { t0?: number } | null)?.t0
    if (typeof t0 === 'number') latencies.push(epochNow() - t0)
    runs[job.jobId] = (runs[job.jobId] ?? 0) + 1
    return null
  },
  { concurrency: 10 },
)
let done = 0
let reported = -1
hooks.on('job:completed', () => void done++)
const timer = setInterval(() => {
  if (done === reported) return
  reported = done
  process.stdout.write(`${JSON.stringify({ done })}\n`)
}, 20)
process.stdout.write('READY\n')

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line === 'START') jobpost.runtime.start()
  if (line === 'STOP') {
    clearInterval(timer)
    await jobpost.close().catch(() => undefined)
    // A pipe is written asynchronously: exit once the (large) line is flushed.
    process.stdout.write(`${JSON.stringify({ runs, latencies })}\n`, () => process.exit(0))
  }
}
