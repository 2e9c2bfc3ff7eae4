import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { eventually } from '../support/harness.js'
import { readEvents, spawnWorker } from './support/processes.js'
import { sharedDatabase } from './support/sharedDatabase.js'

const LEASE_MS = 1500

/**
 * SIGKILL of a worker process mid-job: the jobs it held stay `running` until their lease
 * expires, then a second process recovers them (attempt counted) and each reaches a final state
 * exactly once. Real processes on one shared SQLite file.
 */
describe.each(['sqlite', 'postgres'] as const)('a worker killed with SIGKILL mid-job (%s)', (dialect) => {
  const shared = sharedDatabase(dialect, 'sigkill')
  const eventLog = path.join(shared.tmp.dir, 'events.log')

  it('is recovered after the lease by another process: attempt counted, final exactly once', async (ctx) => {
    if (!shared.producer) return ctx.skip()
    const producerJobs = shared.producer
    const hooks = producerJobs.pluginHooks('crash-test')
    const retried = await hooks.enqueueJobs(Array.from({ length: 5 }, () => ({ type: 'fixture', data: { mode: 'hang-first' }, maxAttempts: 3 })))
    const lastAttempt = await hooks.enqueueJob({ type: 'fixture', data: { mode: 'hang-first' }, maxAttempts: 1 })
    const all = [...retried, lastAttempt].map((job) => job.jobId)

    const first = await spawnWorker({ databaseUrl: shared.databaseUrl, eventLog, leaseMs: LEASE_MS })
    shared.children.push(first)
    const firstPid = first.child.pid!
    await eventually(() => readEvents(eventLog).filter((e) => e.event === 'start' && e.pid === firstPid).length === all.length, { timeoutMs: 15_000 })
    first.child.kill('SIGKILL')
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' })
    const killedAt = Date.now()

    // Nothing is lost: every job is still `running`, held by a lease that has not run out yet.
    const held = await Promise.all(all.map((jobId) => producerJobs.jobs.getJobRecord(jobId)))
    for (const record of held) {
      expect(record).toMatchObject({ status: 'running', attempts: 1 })
      expect(Date.parse(record!.lockedUntil!)).toBeGreaterThan(killedAt - 50)
    }
    const leaseEnds = Math.max(...held.map((record) => Date.parse(record!.lockedUntil!)))

    const second = await spawnWorker({ databaseUrl: shared.databaseUrl, eventLog, leaseMs: LEASE_MS })
    shared.children.push(second)
    const secondPid = second.child.pid!
    await eventually(
      async () => {
        const records = await Promise.all(all.map((jobId) => producerJobs.jobs.getJobRecord(jobId)))
        return records.every((record) => record!.status === 'completed' || record!.status === 'failed')
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    )

    // The worker logs each event just after its commit: the shared.producer may see a final status first.
    const isRecovery = (e: { event: string; pid?: number }) => (e.event === 'job:retry' || e.event === 'job:failed') && e.pid === secondPid
    const isFinal = (e: { event: string }) => e.event === 'job:completed' || e.event === 'job:failed'
    await eventually(
      () => {
        const logged = readEvents(eventLog)
        return logged.filter(isRecovery).length >= all.length && all.every((jobId) => logged.some((e) => e.jobId === jobId && isFinal(e)))
      },
      { timeoutMs: 5000 },
    ).catch(() => undefined)
    const events = readEvents(eventLog)
    // No recovery before the lease ran out.
    const recoveries = events.filter(isRecovery)
    expect(recoveries).toHaveLength(all.length)
    for (const recovery of recoveries) {
      const record = held.find((r) => r!.jobId === recovery.jobId)!
      expect(recovery.at).toBeGreaterThanOrEqual(Date.parse(record.lockedUntil!))
    }
    expect(Math.min(...recoveries.map((r) => r.at))).toBeGreaterThanOrEqual(leaseEnds - LEASE_MS)

    for (const job of retried) {
      const record = await producerJobs.jobs.getJobRecord(job.jobId)
      // Attempt 1 died with the process and was counted; attempt 2 ran in the second process.
      expect(record).toMatchObject({ status: 'completed', attempts: 2, result: { attempt: 2, pid: secondPid }, lockedUntil: null })
      const finals = events.filter((e) => e.jobId === job.jobId && (e.event === 'job:completed' || e.event === 'job:failed'))
      expect(finals).toHaveLength(1)
      expect(events.filter((e) => e.jobId === job.jobId && e.event === 'start').map((e) => [e.n, e.pid])).toEqual([
        [1, firstPid],
        [2, secondPid],
      ])
    }
    // The job on its last attempt fails, once, saying why.
    const failed = await producerJobs.jobs.getJobRecord(lastAttempt.jobId)
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, lockedUntil: null })
    expect(failed!.errorMessage).toMatch(/lease expired/)
    expect(events.filter((e) => e.jobId === lastAttempt.jobId && e.event === 'job:failed')).toHaveLength(1)
    expect(events.filter((e) => e.jobId === lastAttempt.jobId && e.event === 'start')).toHaveLength(1)

    // No job is left running, and nothing is settled twice however long we wait.
    expect((await producerJobs.jobs.stats()).byStatus).toMatchObject({ running: 0, pending: 0 })
    await new Promise((resolve) => setTimeout(resolve, LEASE_MS))
    expect(readEvents(eventLog).filter((e) => e.event.startsWith('job:')).length).toBe(events.filter((e) => e.event.startsWith('job:')).length)

    second.child.kill('SIGTERM')
    expect((await second.exited).code).toBe(0)
  }, 60_000)
})
