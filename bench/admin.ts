/**
 * The admin at scale: BENCH_ADMIN_JOBS jobs (default 1,000,000) in a SQLite file, seeded through
 * the public API (plugin `enqueueJobs` in chunks of 1,000, the runtime processing them, REST
 * cancel and pause, tracked jobs started by their handle), in every status, over five types,
 * three plugins and three users. Then, over real HTTP from a child process, with an administrator
 * and a subscriber token: the stats, each tab's first page as the admin UI asks for it, searches;
 * the server's event-loop delay (`monitorEventLoopDelay`, in this process, which serves them) is
 * recorded around each call. Last, cleanup of the finished jobs older than 30 days.
 *
 * Old jobs get their dates from an injected clock set 40 days back while they are created and run
 * (createJobpost's `clock` option), so cleanup finds 10% of the jobs old, as a real database would.
 */
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { CompletedWithErrors } from '../core/runtime/ProcessorRegistry.js'
import { JOB_STATUSES } from '../core/contract.js'
import { openServer, userSession, type Served } from './http.js'
import { log, median, QUICK, report, sleep, tempDir, waitFor } from './lib.js'

const DAY_MS = 24 * 3600 * 1000
const TYPES = [
  { type: 'email.send', name: 'Send invoice email' },
  { type: 'import.products', name: 'Import products from supplier feed' },
  { type: 'report.build', name: 'Build monthly sales report' },
  { type: 'image.resize', name: 'Resize product images' },
  { type: 'sync.crm', name: 'Sync customers to CRM' },
]
const PLUGINS = ['shop', 'mailer', 'reports']

/** The tabs of the admin UI (admin-ui/src/composables/useJobs.ts) with its page size. */
const TABS: [string, string[]][] = [
  ['active', ['pending', 'running']],
  ['paused', ['paused']],
  ['completed', ['completed', 'completed_with_errors']],
  ['failed', ['failed']],
  ['cancelled', ['cancelled']],
  ['all', [...JOB_STATUSES]],
]
const PAGE = 20

/** What job i becomes: its outcome when run (`o`), or the status it is left in. */
function outcome(i: number): 'completed' | 'completed_with_errors' | 'failed' {
  const r = i % 100
  return r < 6 ? 'failed' : r === 6 ? 'completed_with_errors' : 'completed'
}

class ShiftedClock {
  offsetMs = 0
  now() {
    return Date.now() + this.offsetMs
  }
}

interface Seeded {
  size: number
  old: number
  seconds: number
  statuses: Record<string, number>
}

async function seed(jobpost: Served, clock: ShiftedClock, size: number, owners: { admin: number; subscriber: number; editor: number }, token: string): Promise<Seeded> {
  const started = performance.now()
  const old = Math.round(size * 0.1)
  const delayed = Math.round(size * 0.04)
  const cancelled = Math.round(size * 0.015)
  const paused = Math.round(size * 0.005)
  const running = Math.min(200, Math.max(10, Math.round(size * 0.0002)))
  const processed = size - old - delayed - cancelled - paused - running
  const statuses: Record<string, number> = {}
  const count = (status: string, n = 1) => void (statuses[status] = (statuses[status] ?? 0) + n)

  let finished = 0
  for (const { type } of TYPES) {
    jobpost.pluginHooks('bench').registerJobProcessor(
      type,
      async (job) => {
        const o = (job.data as { o?: string } | null)?.o
        if (o === 'failed') throw new Error('Supplier feed answered 503 Service Unavailable')
        if (o === 'completed_with_errors') return new CompletedWithErrors({ ok: 9, failed: 1 })
        return { ok: true, items: 10 }
      },
      { concurrency: 50, maxAttempts: 1 },
    )
  }
  const hooks = jobpost.pluginHooks('bench')
  hooks.on('job:completed', () => void finished++)
  hooks.on('job:failed', () => void finished++)
  // Owners, types and outcomes on co-prime moduli, so that each owner has jobs of every type and status.
  const ownerOf = (i: number) => (i % 97 === 7 ? owners.subscriber : i % 11 === 3 ? owners.editor : i % 13 === 5 ? owners.admin : null)
  let serial = 0
  const input = (i: number, extra: Record<string, unknown> = {}) => {
    const { type, name } = TYPES[i % TYPES.length]!
    const data: Record<string, unknown> = { customer: `cust-${i % 5000}`, batch: Math.floor(i / 1000) }
    const rare = i % 1000 === 11
    if (rare) data.company = 'Acme Corporation'
    return { type, name: rare ? `${name} for Acme #${i}` : `${name} #${i}`, description: rare ? 'Order for Acme Corporation' : '', createdBy: ownerOf(i), maxAttempts: 1, data, ...extra }
  }
  /** Enqueues `n` jobs in chunks of 1,000 (one plugin per chunk), keeping the runnable backlog ≤ 20k. */
  const enqueue = async (n: number, make: (i: number) => Record<string, unknown>, runs: boolean) => {
    let enqueued = 0
    const target = finished
    for (let i = 0; i < n; i += 1000) {
      const chunk = Array.from({ length: Math.min(1000, n - i) }, () => make(serial++))
      const plugin = PLUGINS[Math.floor(serial / 1000) % PLUGINS.length]!
      await jobpost.pluginHooks(plugin).enqueueJobs(chunk as never)
      enqueued += chunk.length
      if (runs) await waitFor(() => target + enqueued - finished <= 20_000, 3600_000, 'the seeding backlog')
      if ((i / 1000) % 50 === 0) log(`seed: ${serial}/${size} enqueued, ${finished} finished`)
    }
    if (runs) await waitFor(() => finished >= target + n, 3600_000, 'seeded jobs to finish')
  }

  jobpost.runtime.start()
  // 1. Old finished jobs (cleanup's 10%): created and run 40 days ago.
  clock.offsetMs = -40 * DAY_MS
  await enqueue(old, (i) => input(i, { data: { ...input(i).data, o: i % 7 === 0 ? 'failed' : 'completed' } }), true)
  await jobpost.runtime.whenIdle()
  clock.offsetMs = 0
  count('completed (old)', old)
  // 2. Recent jobs, run to completed / completed_with_errors / failed.
  await enqueue(processed, (i) => input(i, { data: { ...input(i).data, o: outcome(i) } }), true)
  // 3. Delayed (pending for a day), and the ones to cancel and pause (delayed too, so none runs first).
  await enqueue(delayed + cancelled + paused, (i) => input(i, { delay: DAY_MS }), false)
  count('pending (delayed)', delayed)
  // Their ids, through the API (every pending job is a held one now).
  const heldIds: string[] = []
  const want = cancelled + paused
  for (let offset = 0; heldIds.length < want; offset += 500) {
    const res = await fetch(`${jobpost.url}/api/v1/jobs?status=pending&limit=500&offset=${offset}`, { headers: { authorization: `Bearer ${token}` } })
    const body = (await res.json()) as { data: { jobId: string }[] }
    if (body.data.length === 0) break
    heldIds.push(...body.data.map((job) => job.jobId))
  }
  const act = async (ids: string[], action: 'cancel' | 'pause') => {
    let next = 0
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < ids.length) {
          const id = ids[next++]!
          const res = await fetch(`${jobpost.url}/api/v1/jobs/${id}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
          if (!res.ok) throw new Error(`${action} ${id}: ${res.status} ${await res.text()}`)
          await res.arrayBuffer()
        }
      }),
    )
  }
  await act(heldIds.slice(0, cancelled), 'cancel')
  count('cancelled', Math.min(cancelled, heldIds.length))
  await act(heldIds.slice(cancelled, want), 'pause')
  count('paused', Math.max(0, Math.min(paused, heldIds.length - cancelled)))
  // 4. Running: tracked jobs started by their plugin's handle (this process keeps their leases).
  for (let i = 0; i < running; i++) {
    const { type } = TYPES[i % TYPES.length]!
    const handle = await jobpost.pluginHooks(PLUGINS[i % PLUGINS.length]!).createJob({ name: `Long export #${i}`, type: `${type}.tracked`, createdBy: ownerOf(i) })
    await handle.start()
  }
  count('running', running)
  count('finished recent', processed)
  return { size: serial + running, old, seconds: (performance.now() - started) / 1000, statuses }
}

interface Measured {
  id: string
  samples: number[]
  status: number
  total: unknown
  loopMaxMs: number
}

export async function benchAdmin() {
  const size = Number(process.env.BENCH_ADMIN_JOBS ?? (QUICK ? 20_000 : 1_000_000))
  const repeat = QUICK ? 5 : 15
  const dir = tempDir('admin')
  const clock = new ShiftedClock()
  const jobpost = await openServer({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') }, { concurrency: 50, clock, unlimited: true })
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./httpClient.ts', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] })
  try {
    const admin = await userSession(jobpost, ['administrator'], 'admin')
    const subscriber = await userSession(jobpost, ['subscriber'], 'subscriber')
    const editor = await userSession(jobpost, ['editor'], 'editor')
    log(`admin: seeding ${size.toLocaleString('en-US')} jobs through the API...`)
    const seeded = await seed(jobpost, clock, size, { admin: admin.userId, subscriber: subscriber.userId, editor: editor.userId }, admin.token)
    const rate = seeded.size / seeded.seconds
    log(`admin: seeded ${seeded.size} jobs in ${seeded.seconds.toFixed(0)} s (${rate.toFixed(0)} jobs/s): ${JSON.stringify(seeded.statuses)}`)
    report({ id: 'admin.seed', label: `seeding ${seeded.size.toLocaleString('en-US')} jobs through the API (enqueueJobs, runtime, REST)`, value: rate, unit: 'jobs/s', note: `${seeded.seconds.toFixed(0)} s` })

    const histogram = monitorEventLoopDelay({ resolution: 2 })
    histogram.enable()
    const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const measure = async (id: string, path: string, token: string, options: { method?: string; repeat?: number; parallel?: number; warm?: number } = {}): Promise<Measured> => {
      await sleep(20)
      histogram.reset()
      child.stdin!.write(`${JSON.stringify({ id, url: `${jobpost.url}${path}`, token, repeat: options.repeat ?? repeat, parallel: options.parallel, warm: options.warm ?? 2, method: options.method })}\n`)
      const result = JSON.parse(String((await lines.next()).value)) as Omit<Measured, 'loopMaxMs'>
      await sleep(10) // a few more ticks, so that a stall that ended with the last response is recorded
      const loopMaxMs = histogram.max / 1e6
      if (result.status >= 400) log(`admin: ${id} answered ${result.status}: ${String(result.total)}`)
      return { ...result, loopMaxMs }
    }
    const label = `at ${seeded.size.toLocaleString('en-US')} jobs`
    const row = (m: Measured, what: string, target?: { ms: number }) => {
      const p50 = median(m.samples)
      const max = Math.max(...m.samples)
      report({
        id: `admin.${m.id}`,
        label: `${what} ${label}`,
        value: p50,
        unit: 'ms',
        baselines: { max, 'loop max delay': m.loopMaxMs, total: typeof m.total === 'number' ? m.total : null },
        target: target ? `p50 ≤ ${target.ms} ms, loop ≤ 50 ms` : 'loop ≤ 50 ms',
        met: (target ? p50 <= target.ms : true) && m.loopMaxMs <= 50,
        note: `HTTP ${m.status}; total ${String(m.total)}; n=${m.samples.length}`,
      })
    }
    for (const [who, session] of [['admin', admin], ['subscriber', subscriber]] as const) {
      row(await measure(`stats.${who}`, '/api/v1/jobs/stats', session.token), `GET /api/v1/jobs/stats (${who})`, { ms: 10 })
      for (const [tab, statuses] of TABS) {
        row(await measure(`tab.${tab}.${who}`, `/api/v1/jobs?status=${statuses.join(',')}&limit=${PAGE}&offset=0`, session.token), `tab ${tab}, first page of ${PAGE} (${who})`, { ms: 15 })
      }
      row(await measure(`search.common.${who}`, `/api/v1/jobs?search=invoice&limit=${PAGE}`, session.token), `search "invoice" (20% of jobs match) (${who})`)
      row(await measure(`search.rare.${who}`, `/api/v1/jobs?search=acme&limit=${PAGE}`, session.token), `search "acme" (0.1% match) (${who})`)
    }
    row(await measure('stats.parallel5.subscriber', '/api/v1/jobs/stats', subscriber.token, { parallel: 5, repeat: 3 }), 'five parallel GET /api/v1/jobs/stats (subscriber)')

    // Cleanup: the old 10% (completed and failed 40 days ago), in one call.
    const cleanup = await measure('cleanup', '/api/v1/jobs/cleanup?daysOld=30', admin.token, { method: 'DELETE', repeat: 1, warm: 0 })
    const seconds = cleanup.samples[0]! / 1000
    const deleted = typeof cleanup.total === 'number' ? cleanup.total : 0
    const per100k = deleted > 0 ? (seconds * 100_000) / deleted : NaN
    report({
      id: 'admin.cleanup',
      label: `DELETE /api/v1/jobs/cleanup?daysOld=30: ${deleted.toLocaleString('en-US')} finished jobs ${label}`,
      value: seconds,
      unit: 's',
      baselines: { 's per 100k': per100k, 'loop max delay (ms)': cleanup.loopMaxMs },
      target: '≤ 2 s per 100k',
      met: per100k <= 2,
      note: `HTTP ${cleanup.status}; expected ${seeded.old}`,
    })
    histogram.disable()
  } finally {
    child.kill()
    await jobpost.close()
    dir.remove()
  }
}
