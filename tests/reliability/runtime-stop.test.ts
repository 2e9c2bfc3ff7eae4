import { describe, expect, it } from 'vitest'
import { startJobpost } from '../support/harness.js'

/**
 * stop() racing a claim: the soak on PostgreSQL found jobs whose processor succeeded but whose
 * completion never landed (recovered by lease expiry, run again). A claim scheduled before stop()
 * ran after it had counted the running attempts, so its jobs ran while the database was closing.
 */
describe('runtime stop racing a claim', () => {
  it('a claim scheduled before stop() claims nothing after it', async () => {
    // No poll: the only claim after start-up is the one the enqueue schedules (a poll claim already
    // in flight when the jobs land would rightly take them, and be drained).
    const jobpost = await startJobpost({ workerPollMs: 60_000 }, { listen: false, runWorker: true })
    let runs = 0
    jobpost.processors.register('stop-race', () => {
      runs++
      return { ok: true }
    })
    await jobpost.listen()
    // Wait until the start-up claims are over, then enqueue (which schedules a claim) and stop at once.
    await new Promise((resolve) => setTimeout(resolve, 50))
    // Straight through the registry: the plugin API queues and yields before it resolves, which
    // would let the claim run before stop() is called.
    const jobs = await jobpost.jobs.createJobs(Array.from({ length: 5 }, () => ({ name: 'stop-race', type: 'stop-race' })), { queue: true })
    await jobpost.runtime.stop({ graceMs: 1000 })
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(runs).toBe(0)
    for (const job of jobs) expect(await jobpost.jobs.getJobRecord(job.jobId)).toMatchObject({ status: 'pending', attempts: 0, lockedUntil: null })
    await jobpost.close()
  })

  it('jobs of a claim in flight when stop() is called are drained before it resolves', async () => {
    const jobpost = await startJobpost({ workerPollMs: 1000 }, { listen: false, runWorker: true })
    jobpost.processors.register('stop-drain', async () => {
      await new Promise((resolve) => setTimeout(resolve, 30))
      return { ok: true }
    })
    await jobpost.listen()
    const jobs = await jobpost.pluginHooks('stop').enqueueJobs(Array.from({ length: 5 }, () => ({ type: 'stop-drain' })))
    // Let the claim start (next turn), then stop while it is in flight or its jobs are running.
    await new Promise((resolve) => setImmediate(resolve))
    await jobpost.runtime.stop({ graceMs: 5000 })
    const records = await Promise.all(jobs.map((job) => jobpost.jobs.getJobRecord(job.jobId)))
    // Each job is either completed (claimed, then drained) or still waiting: never left running.
    for (const record of records) expect(['completed', 'pending']).toContain(record!.status)
    expect(jobpost.runtime.runningCount).toBe(0)
    await jobpost.close()
  })
})
