import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../core/clock.js'
import type { Jobpost } from '../core/createJobpost.js'
import { eventually, freshPostgresDatabase, startJobpost } from './support/harness.js'

/** The runtime's promises on PostgreSQL: SKIP LOCKED claims, token fencing, priority order. */
describe('JobRuntime on PostgreSQL', () => {
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>>
  const hosts: Jobpost[] = []

  beforeAll(async () => {
    pg = await freshPostgresDatabase('runtime')
  })
  afterAll(async () => {
    for (const host of hosts) await host.close({ graceMs: 100 })
    await pg?.drop()
  })

  const host = async (options: { concurrency?: number; clock?: ManualClock } = {}) => {
    const jobpost = await startJobpost(
      { database: { dialect: 'postgres', connectionString: pg!.url }, workerConcurrency: options.concurrency ?? 10, workerPollMs: 20 },
      { listen: false, clock: options.clock },
    )
    hosts.push(jobpost)
    return jobpost
  }

  it('two runtimes on one database run 300 jobs exactly once, within their concurrency', async (ctx) => {
    if (!pg) return ctx.skip()
    const [a, b] = [await host({ concurrency: 3 }), await host({ concurrency: 3 })]
    const runs = new Map<number, number>()
    let running = 0
    let peak = 0
    for (const jobpost of [a, b]) {
      jobpost.pluginHooks('pg').registerJobProcessor('pg-count', async (job) => {
        running++
        peak = Math.max(peak, running)
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1)
        await new Promise((r) => setTimeout(r, 2))
        running--
        return job.id
      })
    }
    await a.pluginHooks('pg').enqueueJobs(Array.from({ length: 300 }, () => ({ type: 'pg-count' })))
    a.runtime.start()
    b.runtime.start()
    await eventually(async () => (await a.jobs.getJobs({ type: 'pg-count', status: 'completed', limit: 1 })).total === 300, { timeoutMs: 25_000 })
    expect(runs.size).toBe(300)
    expect([...runs.values()].every((n) => n === 1)).toBe(true)
    expect(peak).toBeLessThanOrEqual(6)
    await a.runtime.stop()
    await b.runtime.stop()
  })

  it('claims by priority then runAt, and fences a stale attempt token', async (ctx) => {
    if (!pg) return ctx.skip()
    const clock = new ManualClock(Date.now())
    const jobpost = await host({ clock })
    const hooks = jobpost.pluginHooks('pg')
    hooks.registerJobProcessor('pg-fenced', async () => 'x')
    const low = await hooks.enqueueJob({ type: 'pg-fenced', name: 'low', priority: -1 })
    const high = await hooks.enqueueJob({ type: 'pg-fenced', name: 'high', priority: 5 })
    const slots = new Map([['pg-fenced', 1]])
    const [first] = await jobpost.jobs.claimDueJobs({ slots, limit: 1, leaseMs: 1000 })
    expect(first!.jobId).toBe(high.jobId)
    clock.advance(1001)
    const [expired] = await jobpost.jobs.findExpiredLeases(10)
    await jobpost.jobs.recoverExpiredLease(expired!, 0)
    const claimed = await jobpost.jobs.claimDueJobs({ slots: new Map([['pg-fenced', 2]]), limit: 2, leaseMs: 1000 })
    expect(claimed.map((j) => j.jobId)).toEqual([high.jobId, low.jobId])
    await expect(jobpost.jobs.complete(high.jobId, 'stale', { attemptToken: first!.attemptToken! })).rejects.toMatchObject({ code: 'LEASE_LOST' })
    const second = claimed[0]!
    expect(await jobpost.jobs.complete(high.jobId, 'fresh', { attemptToken: second.attemptToken! })).toMatchObject({ status: 'completed', attempts: 2 })
  })

  it('aborts a running processor when its job is cancelled from another instance', async (ctx) => {
    if (!pg) return ctx.skip()
    const runner = await startJobpost(
      { database: { dialect: 'postgres', connectionString: pg!.url }, workerLeaseMs: 600, workerPollMs: 20 },
      { listen: false },
    )
    hosts.push(runner)
    const other = await host()
    let aborted: unknown
    runner.pluginHooks('pg').registerJobProcessor('pg-remote-cancel', (_job, { signal }) =>
      new Promise((_, reject) => signal.addEventListener('abort', () => reject((aborted = signal.reason)))),
    )
    const job = await other.pluginHooks('pg').enqueueJob({ type: 'pg-remote-cancel' })
    runner.runtime.start()
    await eventually(async () => (await other.jobs.getJob(job.jobId))?.status === 'running')
    await other.jobs.cancel(job.jobId)
    // The runner hears of it at its next heartbeat (a third of the lease), not through a local event.
    await eventually(() => aborted !== undefined, { timeoutMs: 5000 })
    await runner.runtime.whenIdle()
    expect(await other.jobs.getJob(job.jobId)).toMatchObject({ status: 'cancelled' })
  })

  it('lets exactly one of concurrent settles win across connections', async (ctx) => {
    if (!pg) return ctx.skip()
    const [a, b] = [await host(), await host()]
    for (let i = 0; i < 5; i++) {
      const job = await a.pluginHooks('pg').createJob({ name: `race ${i}`, type: 'pg-race' })
      await job.start()
      // Two hosts = two connection pools: the database, not an in-process lock, decides.
      const results = await Promise.allSettled([a.jobs.complete(job.jobId, 'a'), b.jobs.fail(job.jobId, 'b')])
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    }
  })
})
