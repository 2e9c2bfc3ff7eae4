/** RSS of one Jobpost process before and after processing 100k no-op jobs (after full collections). */
import v8 from 'node:v8'
import vm from 'node:vm'
import { NOOP, openJobpost } from './jobpostQueue.js'
import { log, QUICK, report, rssMb, sleep, tempDir, waitFor } from './lib.js'

export async function benchRss() {
  const total = Number(process.env.BENCH_RSS_JOBS ?? (QUICK ? 10_000 : 100_000))
  const batch = Math.min(5000, total)
  const dir = tempDir('rss')
  const jobpost = await openJobpost({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') }, { unlimited: true })
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  try {
    const hooks = jobpost.pluginHooks('bench')
    hooks.registerJobProcessor(NOOP, async () => null, { concurrency: 10 })
    let completed = 0
    hooks.on('job:completed', () => void completed++)
    jobpost.runtime.start()
    const run = async (count: number) => {
      const target = completed + count
      for (let i = 0; i < count; i += 1000) {
        await hooks.enqueueJobs(Array.from({ length: Math.min(1000, count - i) }, (_, n) => ({ type: NOOP, data: { n } })))
      }
      await waitFor(() => completed >= target, 900_000, 'RSS jobs')
    }
    await run(Math.min(2000, batch)) // warm up caches and JIT
    gc()
    await sleep(100)
    const before = rssMb()
    const heapBefore = process.memoryUsage().heapUsed / 2 ** 20
    const start = performance.now()
    for (let done = 0; done < total; done += batch) {
      await run(Math.min(batch, total - done))
      if ((done / batch) % 4 === 0) log(`rss: ${done + batch}/${total} jobs, ${rssMb().toFixed(0)} MB`)
    }
    const seconds = (performance.now() - start) / 1000
    gc()
    await sleep(100)
    const after = rssMb()
    const heapAfter = process.memoryUsage().heapUsed / 2 ** 20
    report({
      id: 'rss',
      label: `RSS before → after processing ${total.toLocaleString('en-US')} jobs (SQLite)`,
      value: after,
      unit: 'MB',
      // The V8 heap tells a leak from SQLite's page cache (up to 64 MB) filling as the file grows.
      baselines: { before, growth: after - before, 'heap before (MB)': heapBefore, 'heap after (MB)': heapAfter, 'jobs/s': total / seconds },
      target: 'flat (growth ≤ 25 MB)',
      met: after - before <= 25,
    })
  } finally {
    await jobpost.close()
    dir.remove()
  }
}
