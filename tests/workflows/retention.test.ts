import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../core/clock.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { BATCH_ITEM_POST_TYPE } from '../../core/workflows/batches.js'
import { eventually, startJobpost, userWithRole } from '../support/harness.js'

const DAY = 24 * 3600 * 1000

describe('retention', () => {
  let jobpost: Jobpost | undefined
  afterEach(async () => {
    await jobpost?.close({ graceMs: 100 })
    jobpost = undefined
  })

  async function seed(jp: Jobpost, clock: ManualClock) {
    const hooks = jp.pluginHooks('p')
    hooks.registerBatchProcessor('resize', (item) => ({ resized: item.id }))
    const batch = async () => {
      const job = await hooks.enqueueBatch({ type: 'resize', items: [{ id: 1 }, { id: 2 }] })
      await eventually(async () => (await jp.jobs.getJob(job.jobId))!.status === 'completed')
      return job.jobId
    }
    const finished = async (status: 'completed' | 'failed' | 'cancelled') => {
      const handle = await hooks.createJob({ name: `old ${status}`, type: 'import' })
      if (status === 'cancelled') return (await handle.cancel()).jobId
      await handle.start()
      return status === 'completed' ? (await handle.complete({ ok: true })).jobId : (await handle.fail('broken')).jobId
    }
    const old = {
      completed: await finished('completed'),
      failed: await finished('failed'),
      cancelled: await finished('cancelled'),
      batch: await batch(),
    }
    const oldPending = (await hooks.createJob({ name: 'old but pending', type: 'import' })).jobId
    const oldRunning = await hooks.createJob({ name: 'old but running', type: 'import' })
    await oldRunning.start()
    clock.advance(29 * DAY)
    const recent = { completed: await finished('completed'), batch: await batch() }
    clock.advance(2 * DAY) // the old ones are now 31 days old, the recent ones 2
    return { old, oldPending, oldRunning: oldRunning.jobId, recent }
  }

  it('removes only finished jobs older than JOB_RETENTION_DAYS, with their batch items', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'))
    jobpost = await startJobpost({ jobRetentionDays: 30 }, { clock })
    jobpost.runtime.start()
    const ids = await seed(jobpost, clock)
    expect((await jobpost.store.findPostIds({ postType: BATCH_ITEM_POST_TYPE, limit: 10 })).length).toBe(4)

    expect(await jobpost.workflows.retention.runOnce()).toEqual({ jobs: 4, items: 2 })
    for (const jobId of Object.values(ids.old)) expect(await jobpost.jobs.getJob(jobId)).toBeNull()
    for (const jobId of [ids.oldPending, ids.oldRunning, ...Object.values(ids.recent)]) expect(await jobpost.jobs.getJob(jobId)).not.toBeNull()
    expect(await jobpost.workflows.batches.listItems(ids.recent.batch)).toHaveLength(2)
    expect(await jobpost.workflows.retention.runOnce()).toEqual({ jobs: 0, items: 0 })
  })

  it('runs from an unref()ed timer started with the worker, and is off at 0 days', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'))
    jobpost = await startJobpost({ jobRetentionDays: 30 }, { clock })
    jobpost.runtime.start()
    const ids = await seed(jobpost, clock)
    jobpost.workflows.start()
    await eventually(async () => (await jobpost!.jobs.getJob(ids.old.completed)) === null)
    expect(await jobpost.jobs.getJob(ids.recent.completed)).not.toBeNull()
    await jobpost.workflows.stop()

    const off = await startJobpost({ jobRetentionDays: 0 }, { clock })
    try {
      const handle = await off.pluginHooks('p').createJob({ name: 'ancient', type: 'import' })
      await handle.start()
      await handle.complete()
      clock.advance(3000 * DAY)
      expect(await off.workflows.retention.runOnce()).toEqual({ jobs: 0, items: 0 })
      expect(await off.jobs.getJob(handle.jobId)).not.toBeNull()
    } finally {
      await off.close()
    }
  })

  it('keeps DELETE /api/v1/jobs/cleanup working beside it', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'))
    jobpost = await startJobpost({}, { clock })
    const handle = await jobpost.pluginHooks('p').createJob({ name: 'done', type: 'import' })
    await handle.start()
    await handle.complete()
    clock.advance(8 * DAY)
    const admin = await userWithRole(jobpost, 'administrator') // (tokens follow the clock too)
    const res = await request(jobpost.app).delete('/api/v1/jobs/cleanup?daysOld=7').set('Authorization', `Bearer ${admin.token}`).expect(200)
    expect(res.body.data).toEqual({ deleted: 1 })
  })
})
