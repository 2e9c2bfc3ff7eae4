import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import type { DatabaseTarget } from '../../../core/config.js'
import type { Jobpost } from '../../../core/createJobpost.js'
import { UnrecoverableError } from '../../../core/errors.js'
import pino from 'pino'
import { startJobpost } from '../../support/harness.js'

export interface SoakOptions {
  jobs: number
  /** How many times the instance is closed (in-flight attempts released) and a new one started. */
  restarts: number
  database: DatabaseTarget
  /** Chance that an attempt throws a retryable error / an unrecoverable one. */
  failureRate?: number
  unrecoverableRate?: number
  concurrency?: number
  /** Deterministic randomness. */
  seed?: number
  log?: (message: string) => void
}

export interface SoakReport {
  jobs: number
  completed: number
  failed: number
  /** jobIds whose final event was seen other than exactly once. */
  notExactlyOnce: { jobId: string; finals: number }[]
  /** Jobs whose processor returned success more than once, with what happened to them. */
  succeededTwice: { jobId: string; successes: number; attempts: number; retries: string[]; logs: string[] }[]
  /** Errors the instances logged, by message. */
  loggedErrors: Record<string, number>
  /** Jobs whose stored status disagrees with the final event seen. */
  statusMismatches: string[]
  retries: number
  restartsDone: number
  /** Attempts interrupted by a restart (released to the queue uncounted). */
  interrupted: number
  storedByStatus: Record<string, number>
  elapsedMs: number
  jobsPerSecond: number
  /** Largest growth, over one instance's life, of its hook listeners per event (a leak if > 0). */
  listenerGrowth: Record<string, number>
}

/** mulberry32: a small seeded PRNG so that a failing soak can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const WATCHED_EVENTS = ['job:created', 'job:started', 'job:completed', 'job:failed', 'job:retry', 'job:progress'] as const

/**
 * Pushes `jobs` jobs through the real runtime on a real database, with random retryable and
 * unrecoverable failures and `restarts` graceful restarts of the whole instance along the way.
 * Every final state is counted from the events each instance emits; the caller asserts.
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined)
  const rand = random(options.seed ?? 42)
  const failureRate = options.failureRate ?? 0.1
  const unrecoverableRate = options.unrecoverableRate ?? 0.02
  const finals = new Map<string, { count: number; status: string }>()
  const successes = new Map<string, number>()
  const listenerGrowth: Record<string, number> = {}
  const listenersAtOpen = new WeakMap<Jobpost, Record<string, number>>()
  const countListeners = (instance: Jobpost) => Object.fromEntries(WATCHED_EVENTS.map((event) => [event, instance.hooks.listenerCount(event)]))
  const recordGrowth = (instance: Jobpost) => {
    const atOpen = listenersAtOpen.get(instance)!
    const now = countListeners(instance)
    for (const event of WATCHED_EVENTS) listenerGrowth[event] = Math.max(listenerGrowth[event] ?? 0, now[event]! - atOpen[event]!)
  }
  let retries = 0
  const retryErrors = new Map<string, string[]>()
  /** Warnings and errors the instances logged (kept to explain a failure). */
  const warnings: string[] = []
  let interrupted = 0
  const started = Date.now()

  const open = async (): Promise<Jobpost> => {
    const instance = await startJobpost(
      {
        database: options.database,
        workerConcurrency: options.concurrency ?? 20,
        workerLeaseMs: 5000,
        workerPollMs: 50,
        jobRetentionDays: 0,
      },
      { listen: false, runWorker: true, logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }) },
    )
    instance.processors.register(
      'soak',
      async (job, { signal }) => {
        const roll = rand()
        const pace = rand()
        // 5% of attempts take 50 ms, so that restarts catch some mid-run (released, uncounted).
        if (pace < 0.05) await new Promise((resolve) => setTimeout(resolve, 50))
        else if (pace < 0.25) await new Promise((resolve) => setTimeout(resolve, Math.floor(rand() * 3)))
        if (signal.aborted) throw signal.reason
        if (roll < unrecoverableRate) throw new UnrecoverableError('soak: unrecoverable')
        if (roll < unrecoverableRate + failureRate) throw Object.assign(new Error('soak: transient'), { retryDelay: Math.floor(rand() * 5) })
        successes.set(job.jobId, (successes.get(job.jobId) ?? 0) + 1)
        return { n: (job.data as { n: number }).n }
      },
      { maxAttempts: 3, backoff: { type: 'fixed', delay: 1 } },
    )
    const final = (status: string) => ({ job }: { job: { jobId: string } }) => {
      const seen = finals.get(job.jobId)
      finals.set(job.jobId, { count: (seen?.count ?? 0) + 1, status })
    }
    instance.hooks.on('job:completed', final('completed'))
    instance.hooks.on('job:failed', final('failed'))
    instance.hooks.on('job:retry', ({ job, error }) => {
      retryErrors.set(job.jobId, [...(retryErrors.get(job.jobId) ?? []), error])
      retries++
      if (/shutdown/.test(error)) interrupted++
    })
    await instance.listen()
    listenersAtOpen.set(instance, countListeners(instance))
    return instance
  }

  let instance = await open()
  const enqueuer = instance.pluginHooks('soak')
  for (let i = 0; i < options.jobs; i += 1000) {
    const size = Math.min(1000, options.jobs - i)
    await enqueuer.enqueueJobs(Array.from({ length: size }, (_, n) => ({ type: 'soak', data: { n: i + n } })))
  }
  log(`enqueued ${options.jobs} jobs in ${Date.now() - started} ms`)

  let restartsDone = 0
  let lastCount = 0
  let lastProgressAt = Date.now()
  const restartEvery = Math.max(1, Math.floor(options.jobs / (options.restarts + 1)))
  for (;;) {
    const done = finals.size
    if (done >= options.jobs) break
    if (restartsDone < options.restarts && done >= restartEvery * (restartsDone + 1)) {
      recordGrowth(instance)
      // A graceful restart with a short grace: running attempts are aborted and released.
      await instance.close({ graceMs: 5 })
      restartsDone++
      instance = await open()
      log(`restart ${restartsDone}/${options.restarts} at ${done} final jobs`)
      continue
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (finals.size !== lastCount) {
      lastCount = finals.size
      lastProgressAt = Date.now()
    } else if (Date.now() - lastProgressAt > 5000) {
      // No progress for a while: stop if nothing is left to do (the assertions then say what was lost).
      // Not polled more often: stats are a heavy query with 100k jobs.
      lastProgressAt = Date.now()
      const stats = await instance.jobs.stats()
      if (stats.byStatus.pending + stats.byStatus.running + stats.byStatus.paused === 0) break
    }
  }
  recordGrowth(instance)

  const stats = await instance.jobs.stats()
  const notExactlyOnce: { jobId: string; finals: number }[] = []
  const statusMismatches: string[] = []
  let completed = 0
  let failed = 0
  for (let offset = 0; ; offset += 500) {
    const page = await instance.jobs.getJobs({ type: 'soak', limit: 500, offset })
    for (const job of page.jobs) {
      const seen = finals.get(job.jobId)
      if (!seen || seen.count !== 1) notExactlyOnce.push({ jobId: job.jobId, finals: seen?.count ?? 0 })
      else if (seen.status !== job.status) statusMismatches.push(job.jobId)
      if (job.status === 'completed') completed++
      if (job.status === 'failed') failed++
    }
    if (page.jobs.length < 500) break
  }
  const succeededTwice: SoakReport['succeededTwice'] = []
  for (const [jobId, n] of successes) {
    if (n <= 1) continue
    const record = await instance.jobs.getJobRecord(jobId)
    succeededTwice.push({
      jobId,
      successes: n,
      attempts: record?.attempts ?? -1,
      retries: retryErrors.get(jobId) ?? [],
      logs: warnings.filter((line) => line.includes(jobId)).slice(0, 5),
    })
  }
  await instance.close()
  const loggedErrors: Record<string, number> = {}
  for (const line of warnings) {
    const parsed = JSON.parse(line) as { level: number; msg: string; err?: { message?: string } }
    if (parsed.level < 50) continue
    const key = `${parsed.msg}${parsed.err?.message ? `: ${parsed.err.message.slice(0, 120)}` : ''}`
    loggedErrors[key] = (loggedErrors[key] ?? 0) + 1
  }
  const elapsedMs = Date.now() - started
  return {
    jobs: options.jobs,
    completed,
    failed,
    notExactlyOnce,
    succeededTwice,
    statusMismatches,
    retries,
    restartsDone,
    interrupted,
    storedByStatus: stats.byStatus,
    elapsedMs,
    jobsPerSecond: Math.round((options.jobs / elapsedMs) * 1000),
    listenerGrowth,
    loggedErrors,
  }
}

/** Handles and requests Node holds open, by kind (process.getActiveResourcesInfo). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
  return counts
}

export function sqliteTarget(dir: string): DatabaseTarget {
  return { dialect: 'sqlite', filename: path.join(dir, 'soak.sqlite') }
}

/** The garbage collector, exposed at run time if node was not started with --expose-gc. */
function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return exposed
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

/** After full collections: the RSS and the V8 heap in use, in MB. */
export async function settledMemoryMb(): Promise<{ rss: number; heap: number }> {
  const gc = collector()
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const { rss, heapUsed } = process.memoryUsage()
  return { rss: rss / 1024 / 1024, heap: heapUsed / 1024 / 1024 }
}
