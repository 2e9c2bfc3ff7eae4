import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OffsetClock, type Clock } from '../../core/clock.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { eventually, freshPostgresDatabase, startJobpost } from '../support/harness.js'

const SKEW_MS = 2 * 60 * 1000
const LEASE_MS = 2000

/** This machine's clock, off by `offsetMs` (what a host without NTP looks like to the process). */
const skewed = (offsetMs: number): Clock => ({ now: () => Date.now() + offsetMs })

/**
 * An instance whose clock is minutes off the database's must not run delayed jobs early nor
 * treat another instance's live lease as expired, nor write leases that others see as expired:
 * the runtime's time follows the database clock (core/cluster/databaseClock.ts on PostgreSQL).
 */
describe('app clock skewed against the database clock (PostgreSQL)', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  const instances: Jobpost[] = []

  beforeAll(async () => {
    database = await freshPostgresDatabase('clock_skew')
  }, 30_000)
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.close({ graceMs: 0 })))
    await database?.drop()
  })

  async function instance(offsetMs: number, role: string): Promise<Jobpost> {
    const jobpost = await startJobpost(
      {
        database: { dialect: 'postgres', connectionString: database!.url },
        workerLeaseMs: LEASE_MS,
        workerPollMs: 50,
      },
      { listen: false, clock: new OffsetClock(skewed(offsetMs)), runWorker: true },
    )
    instances.push(jobpost)
    jobpost.logger.debug({ role }, 'instance started')
    return jobpost
  }

  it('follows the database clock whichever way its own clock is off', async (ctx) => {
    if (!database) return ctx.skip()
    const ahead = await instance(SKEW_MS, 'ahead')
    const behind = await instance(-SKEW_MS, 'behind')
    const dbNow = await ahead.store.databaseNow()
    for (const jobpost of [ahead, behind]) expect(Math.abs(jobpost.clock.now() - dbNow)).toBeLessThan(1000)
  })

  it('no early runs: a job due in 1.5 s does not start early on an instance 2 minutes ahead', async (ctx) => {
    if (!database) return ctx.skip()
    const ahead = instances[0]!
    const started: { jobId: string; at: number }[] = []
    ahead.processors.register('skew-delayed', (job) => {
      started.push({ jobId: job.jobId, at: Date.now() })
      return { ok: true }
    })
    await ahead.listen()
    const producer = instances[1]!
    const runAt = (await producer.store.databaseNow()) + 1500
    const job = await producer.pluginHooks('skew').enqueueJob({ type: 'skew-delayed', runAt: new Date(runAt).toISOString() })
    await eventually(async () => (await producer.jobs.getJob(job.jobId))?.status === 'completed', { timeoutMs: 10_000 })
    expect(started).toHaveLength(1)
    // Same machine: Date.now() here is the database's time (within the measurement error).
    expect(started[0]!.at).toBeGreaterThanOrEqual(runAt - 100)
  }, 20_000)

  it('no early lease expiry: neither a fast nor a slow clock takes over or loses a live attempt', async (ctx) => {
    if (!database) return ctx.skip()
    const [ahead, behind] = instances as [Jobpost, Jobpost]
    // Each instance runs jobs that take 3 leases long; the other (skewed the other way) recovers leases.
    const runs: string[] = []
    for (const [jobpost, type] of [
      [ahead, 'skew-held-by-ahead'],
      [behind, 'skew-held-by-behind'],
    ] as const) {
      jobpost.processors.register(
        type,
        async (job, { signal }) => {
          runs.push(`${type}:${job.jobId}`)
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, 3 * LEASE_MS)
            signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true })
          })
          return { heldBy: type }
        },
        { maxAttempts: 5 },
      )
    }
    if (!behind.runtime.isStarted) await behind.listen()
    const retries: string[] = []
    for (const jobpost of instances) jobpost.hooks.on('job:retry', ({ job }) => retries.push(job.jobId))
    const hooks = ahead.pluginHooks('skew')
    const jobs = [await hooks.enqueueJob({ type: 'skew-held-by-ahead' }), await hooks.enqueueJob({ type: 'skew-held-by-behind' })]
    await eventually(async () => (await Promise.all(jobs.map((job) => ahead.jobs.getJob(job.jobId)))).every((job) => job!.status === 'completed'), {
      timeoutMs: 20_000,
      intervalMs: 100,
    })
    expect(retries).toEqual([])
    for (const job of jobs) {
      expect(await ahead.jobs.getJobRecord(job.jobId)).toMatchObject({ status: 'completed', attempts: 1, result: { heldBy: job.type } })
    }
    expect(runs).toHaveLength(2)
  }, 30_000)
})
