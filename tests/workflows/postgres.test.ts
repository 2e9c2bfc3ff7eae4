import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../../core/clock.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { BATCH_ITEM_POST_TYPE } from '../../core/workflows/batches.js'
import { eventually, freshPostgresDatabase, startJobpost } from '../support/harness.js'

/** The workflow SQL (schedule guard, timings, orphan sweep) on PostgreSQL; skipped when none answers. */
describe('workflows on PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>
  const open: Jobpost[] = []
  const clockA = new ManualClock(Date.parse('2026-03-01T01:00:00.000Z'))
  const clockB = new ManualClock(Date.parse('2026-03-01T01:00:00.000Z'))

  beforeAll(async () => {
    database = await freshPostgresDatabase('workflows')
  })
  afterAll(async () => {
    for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
    await database?.drop()
  })
  const instance = async (clock: ManualClock) => {
    const jobpost = await startJobpost({ database: { dialect: 'postgres', connectionString: database!.url } }, { clock, listen: false })
    open.push(jobpost)
    return jobpost
  }

  it('fires a schedule once across two instances ticking at the same moment', async (ctx) => {
    if (!database) return ctx.skip()
    const a = await instance(clockA)
    const b = await instance(clockB)
    const nightly = { name: 'nightly', schedule: '0 2 * * *', jobData: { type: 'cleanup' } }
    await Promise.all([a.pluginHooks('p').scheduleJob(nightly), b.pluginHooks('p').scheduleJob(nightly)])
    for (let day = 1; day <= 5; day++) {
      const at = Date.parse(`2026-03-0${day}T02:00:00.500Z`)
      clockA.set(at)
      clockB.set(at)
      const fired = await Promise.all([a.workflows.scheduler.tick(), b.workflows.scheduler.tick()])
      expect(fired[0] + fired[1]).toBe(1)
    }
    expect((await a.jobs.getJobs({ type: 'cleanup' })).total).toBe(5)
  })

  it('computes processing time and throughput, and sweeps orphaned batch items', async (ctx) => {
    if (!database) return ctx.skip()
    const clock = new ManualClock(Date.parse('2026-06-01T00:00:00.000Z'))
    const jobpost = await instance(clock)
    const hooks = jobpost.pluginHooks('p')
    for (const ms of [1500, 2500]) {
      const handle = await hooks.createJob({ name: 'timed', type: 'pg-timed' })
      await handle.start()
      clock.advance(ms)
      await handle.complete()
    }
    const stats = await jobpost.jobs.stats()
    expect(stats).toMatchObject({ averageProcessingMs: 2000, throughput: { lastMinute: 2, lastHour: 2 } })

    jobpost.runtime.start()
    hooks.registerBatchProcessor('pg-batch', (item) => ({ ok: item.id }))
    const batch = await hooks.enqueueBatch({ type: 'pg-batch', items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] })
    await eventually(async () => (await jobpost.jobs.getJob(batch.jobId))!.status === 'completed')
    expect(await jobpost.workflows.batches.sweepOrphans()).toBe(0)
    clock.advance(40 * 24 * 3600_000)
    const removed = await jobpost.workflows.retention.runOnce()
    expect(removed.items).toBe(3)
    expect(await jobpost.store.findPostIds({ postType: BATCH_ITEM_POST_TYPE, limit: 10 })).toEqual([])
  })
})
