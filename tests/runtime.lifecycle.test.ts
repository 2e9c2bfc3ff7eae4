import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { DatabaseTarget } from '../core/config.js'
import type { Job } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { ManualClock } from '../core/clock.js'
import { UnrecoverableError } from '../core/errors.js'
import { backoffDelay, DEFAULT_MAX_DELAY_MS, MAX_RETRY_DELAY_MS } from '../core/runtime/backoff.js'
import { connectWs, eventually, freshPostgresDatabase, startJobpost, userWithRole } from './support/harness.js'

/**
 * The job lifecycle of issue 12 on both dialects: one token lifecycle (fencing), pause that
 * really stops a running attempt (checkpoint, not counted), tracked jobs (lease, NOT_PAUSABLE,
 * NOT_RETRYABLE), backoff caps, recovery per record, progress written behind, slots held until
 * the handler returns, late results logged, heartbeats during a shutdown's drain.
 */

interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

function capturingLogger() {
  const lines: LogLine[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) })
  return { logger, lines }
}

function whenStatus(jobpost: Jobpost, jobId: string, statuses: Job['status'][]): Promise<Job> {
  return new Promise((resolve) => {
    const offs: (() => void)[] = []
    const check = ({ job }: { job: Job }) => {
      if (job.jobId === jobId && statuses.includes(job.status)) {
        for (const off of offs) off()
        resolve(job)
      }
    }
    for (const event of ['job:completed', 'job:failed', 'job:cancelled', 'job:paused', 'job:retry', 'job:started', 'job:updated'] as const) {
      offs.push(jobpost.hooks.on(event, check))
    }
  })
}

describe.each(['sqlite', 'postgres'] as const)('job lifecycle (%s)', (dialect) => {
  let database: DatabaseTarget = { dialect: 'sqlite', filename: ':memory:' }
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let skip = false
  const open: Jobpost[] = []

  beforeAll(async () => {
    if (dialect === 'postgres') {
      pg = await freshPostgresDatabase('lifecycle')
      if (!pg) skip = true
      else database = { dialect: 'postgres', connectionString: pg.url }
    }
  })
  afterEach(async () => {
    for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
  })
  afterAll(async () => {
    await pg?.drop()
  })

  async function host(options: { leaseMs?: number; logger?: pino.Logger; listen?: boolean; concurrency?: number; database?: DatabaseTarget } = {}) {
    const jobpost = await startJobpost(
      { database: options.database ?? database, workerLeaseMs: options.leaseMs ?? 30_000, workerPollMs: 50, workerConcurrency: options.concurrency ?? 10 },
      { listen: options.listen ?? false, logger: options.logger },
    )
    open.push(jobpost)
    return jobpost
  }
  const unique = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`

  it('fences settles by the current token: claim → cancel → retry, and the first attempt’s late fail is refused', async (ctx) => {
    if (skip) return ctx.skip()
    const jobpost = await host()
    const type = unique('fenced')
    jobpost.processors.register(type, async () => 'ran')
    const job = await jobpost.pluginHooks('t').enqueueJob({ type })
    const [first] = await jobpost.jobs.claimDueJobs({ slots: new Map([[type, 1]]), limit: 1, leaseMs: 30_000 })
    expect(first!.attemptToken).toBeTruthy()
    const cancelled = await jobpost.jobs.cancel(job.jobId)
    expect(cancelled).toMatchObject({ status: 'cancelled', attemptToken: null, lockedUntil: null })
    const retried = await jobpost.jobs.retry(job.jobId)
    expect(retried).toMatchObject({ status: 'pending', attemptToken: null })
    // The first attempt's late settles: refused, nothing written.
    await expect(jobpost.jobs.fail(job.jobId, 'late', { attemptToken: first!.attemptToken! })).rejects.toMatchObject({ code: 'LEASE_LOST' })
    await expect(jobpost.jobs.completeAttempt(first!, 'late')).rejects.toMatchObject({ code: 'LEASE_LOST' })
    await expect(jobpost.jobs.updateProgress(job.jobId, 50, undefined, { attemptToken: first!.attemptToken! })).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    expect(await jobpost.jobs.renewLeases([first!.attemptToken!], 30_000)).toEqual(new Set())
    expect(await jobpost.jobs.getJob(job.jobId)).toMatchObject({ status: 'pending', errorMessage: null, result: null, progress: 0 })
    // The retried job runs with a new token and completes.
    const done = whenStatus(jobpost, job.jobId, ['completed', 'failed'])
    jobpost.runtime.start()
    expect(await done).toMatchObject({ status: 'completed', result: 'ran', attempts: 1 })
  })

  it('a paused job accepts no settle; a requeue retires the token too', async (ctx) => {
    if (skip) return ctx.skip()
    const jobpost = await host()
    const type = unique('paused-settle')
    jobpost.processors.register(type, async () => 'x', { maxAttempts: 3 })
    const job = await jobpost.pluginHooks('t').enqueueJob({ type })
    const [attempt] = await jobpost.jobs.claimDueJobs({ slots: new Map([[type, 1]]), limit: 1, leaseMs: 30_000 })
    expect(await jobpost.jobs.pause(job.jobId)).toMatchObject({ status: 'paused', attempts: 0, attemptToken: null, lockedUntil: null })
    await expect(jobpost.jobs.completeAttempt(attempt!, 'late')).rejects.toMatchObject({ code: 'LEASE_LOST' })
    await expect(jobpost.jobs.complete(job.jobId, 'no token')).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    await expect(jobpost.jobs.fail(job.jobId, 'no token')).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    expect(await jobpost.jobs.resume(job.jobId)).toMatchObject({ status: 'pending' })
    const [second] = await jobpost.jobs.claimDueJobs({ slots: new Map([[type, 1]]), limit: 1, leaseMs: 30_000 })
    expect(second!.attemptToken).not.toBe(attempt!.attemptToken)
    const requeued = await jobpost.jobs.requeue(job.jobId, 'try again', 0, { attemptToken: second!.attemptToken!, current: second })
    expect(requeued).toMatchObject({ status: 'pending', attemptToken: null, lockedUntil: null })
    await expect(jobpost.jobs.completeAttempt(second!, 'late')).rejects.toMatchObject({ code: 'LEASE_LOST' })
  })

  it('pause aborts a running attempt (reason paused, not counted, later writes refused); resume runs it from its checkpoint', async (ctx) => {
    if (skip) return ctx.skip()
    const { logger, lines } = capturingLogger()
    const jobpost = await host({ logger })
    const type = unique('pausable')
    const seen: { attempt: number; checkpoint: unknown }[] = []
    const reasons: unknown[] = []
    let lateWrites: Promise<unknown>[] = []
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    jobpost.processors.register(type, async (job, { signal, attempt, checkpoint, updateProgress }) => {
      seen.push({ attempt, checkpoint: job.checkpoint })
      if (job.checkpoint === null) {
        await updateProgress(40)
        await checkpoint({ done: 40 })
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
        reasons.push(signal.reason)
        // Ignores the abort for a while, then tries to write: everything is refused.
        await held
        lateWrites = [checkpoint({ done: 99 }), updateProgress(99)]
        await Promise.allSettled(lateWrites)
        return 'late result'
      }
      return { resumedFrom: job.checkpoint }
    })
    const job = await jobpost.pluginHooks('t').enqueueJob({ type })
    const started = whenStatus(jobpost, job.jobId, ['running'])
    jobpost.runtime.start()
    await started
    await eventually(async () => (await jobpost.jobs.getJobRecord(job.jobId))?.checkpoint !== null)
    const paused = await jobpost.jobs.pause(job.jobId)
    expect(paused).toMatchObject({ status: 'paused', attempts: 0 })
    await eventually(() => reasons.length === 1)
    expect(reasons).toEqual(['paused'])
    // The handler has not returned: its slot is still taken.
    expect(jobpost.runtime.runningCount).toBe(1)
    release()
    await jobpost.runtime.whenIdle()
    await expect(lateWrites[0]).rejects.toMatchObject({ code: 'LEASE_LOST' })
    const stored = await jobpost.jobs.getJobRecord(job.jobId)
    expect(stored).toMatchObject({ status: 'paused', attempts: 0, progress: 40, checkpoint: { done: 40 }, result: null })
    expect(lines.some((line) => line.jobId === job.jobId && /late result/i.test(line.msg))).toBe(true)

    const final = whenStatus(jobpost, job.jobId, ['completed', 'failed'])
    await jobpost.jobs.resume(job.jobId)
    expect(await final).toMatchObject({ status: 'completed', attempts: 1, result: { resumedFrom: { done: 40 } } })
    expect(seen).toEqual([
      { attempt: 1, checkpoint: null },
      { attempt: 1, checkpoint: { done: 40 } },
    ])
  })

  it('tracked jobs: NOT_PAUSABLE without onPause, onPause called with one, NOT_RETRYABLE without a processor (REST 409)', async (ctx) => {
    if (skip) return ctx.skip()
    const jobpost = await host({ listen: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const api = (jobId: string, action: string) => request(jobpost.app).post(`/api/v1/jobs/${jobId}/${action}`).set('Authorization', `Bearer ${admin.token}`)
    const hooks = jobpost.pluginHooks('tracker')

    const plain = await hooks.createJob({ name: 'plain', type: unique('tracked') })
    // The job object says what would happen, so clients offer only that.
    expect(await plain.get()).toMatchObject({ pausable: false, retryable: false })
    await plain.start()
    const refused = await api(plain.jobId, 'pause').expect(409)
    expect(refused.body.error.code).toBe('NOT_PAUSABLE')
    expect((await plain.get()).status).toBe('running')

    const pausedJobs: Job[] = []
    const pausable = await hooks.createJob({ name: 'pausable', type: unique('tracked'), onPause: (job) => void pausedJobs.push(job) })
    expect(await pausable.get()).toMatchObject({ pausable: true, retryable: false })
    await pausable.start()
    await pausable.updateProgress(30)
    const res = await api(pausable.jobId, 'pause').expect(200)
    expect(res.body.data).toMatchObject({ status: 'paused', progress: 30 })
    await eventually(() => pausedJobs.length === 1)
    expect(pausedJobs[0]).toMatchObject({ jobId: pausable.jobId, status: 'paused' })
    // The handle's writes are refused once paused; resume puts it back to pending for the plugin.
    await expect(pausable.updateProgress(60)).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    await expect(pausable.complete('done')).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    expect((await api(pausable.jobId, 'resume').expect(200)).body.data.status).toBe('pending')
    await pausable.start()
    expect((await pausable.complete('done')).status).toBe('completed')

    await plain.fail('broke')
    const notRetryable = await api(plain.jobId, 'retry').expect(409)
    expect(notRetryable.body.error.code).toBe('NOT_RETRYABLE')
    expect((await plain.get()).status).toBe('failed')

    // A tracked job of a type that has a processor now can be retried: the processor runs it.
    const type = unique('adopted')
    const adopted = await hooks.createJob({ name: 'adopted', type })
    await adopted.start()
    await adopted.fail('first try')
    jobpost.processors.register(type, async () => 'by the processor')
    const final = whenStatus(jobpost, adopted.jobId, ['completed', 'failed'])
    jobpost.runtime.start()
    expect((await api(adopted.jobId, 'retry').expect(200)).body.data.status).toBe('pending')
    expect(await final).toMatchObject({ status: 'completed', result: 'by the processor' })
  })

  it('a running tracked job holds a lease its process renews; the job is never recovered while that process lives', async (ctx) => {
    if (skip) return ctx.skip()
    const jobpost = await host({ leaseMs: 300 })
    const handle = await jobpost.pluginHooks('tracker').createJob({ name: 'long', type: unique('tracked') })
    const started = await jobpost.jobs.start(handle.jobId)
    expect(started.attemptToken).toBeTruthy()
    const firstLease = Date.parse(started.lockedUntil!)
    // Renewed (every third of the lease) past its first expiry.
    await eventually(async () => Date.parse((await jobpost.jobs.getJobRecord(handle.jobId))!.lockedUntil!) > firstLease + 300, { timeoutMs: 5000 })
    expect(await jobpost.runtime.recover()).toBe(0)
    expect((await handle.updateProgress(50)).status).toBe('running')
    expect((await handle.complete({ ok: true })).status).toBe('completed')
    expect(await jobpost.jobs.getJobRecord(handle.jobId)).toMatchObject({ attemptToken: null, lockedUntil: null })
  })

  it('backoff is capped, retryDelay is clamped, and recovery goes on past a record it cannot recover', async (ctx) => {
    if (skip) return ctx.skip()
    expect(backoffDelay({ type: 'exponential', delay: 2000 }, 5000)).toBe(DEFAULT_MAX_DELAY_MS)
    expect(backoffDelay({ type: 'linear', delay: 2000, maxDelay: 10_000 }, 50)).toBe(10_000)
    const clock = new ManualClock(Date.parse('2026-07-01T00:00:00.000Z'))
    const jobpost = await startJobpost({ database, workerPollMs: 50 }, { listen: false, clock })
    open.push(jobpost)
    const type = unique('far')
    jobpost.processors.register(type, async () => ({ success: false, error: 'later', retryDelay: 1e300 }), { maxAttempts: 3 })
    const job = await jobpost.pluginHooks('t').enqueueJob({ type })
    const retried = whenStatus(jobpost, job.jobId, ['pending'])
    jobpost.runtime.start()
    const pending = await retried
    expect(Date.parse(pending.runAt) - clock.now()).toBe(MAX_RETRY_DELAY_MS)
    expect(pending.errorMessage).toMatch(/later/)
    await jobpost.runtime.stop()

    // Two expired leases; recovering the first throws (its processor's backoff is broken).
    const brokenType = unique('broken')
    const fineType = unique('fine')
    jobpost.processors.register(brokenType, async () => 'x')
    jobpost.processors.register(fineType, async () => 'x')
    const broken = await jobpost.pluginHooks('t').enqueueJob({ type: brokenType })
    const fine = await jobpost.pluginHooks('t').enqueueJob({ type: fineType })
    await jobpost.jobs.claimDueJobs({ slots: new Map([[brokenType, 1]]), limit: 1, leaseMs: 1000 })
    await jobpost.jobs.claimDueJobs({ slots: new Map([[fineType, 1]]), limit: 1, leaseMs: 1001 })
    ;(jobpost.processors.get(brokenType)!.backoff as { type: string }).type = 'bogus'
    clock.advance(2000)
    expect(await jobpost.runtime.recover()).toBe(1)
    expect(await jobpost.jobs.getJob(fine.jobId)).toMatchObject({ status: 'pending' })
    expect(await jobpost.jobs.getJob(broken.jobId)).toMatchObject({ status: 'running' })
  })

  it('writes progress behind: a flood costs the loop nothing noticeable, ≤ ~10 writes a second, the last value persisted and sent', async (ctx) => {
    if (skip) return ctx.skip()
    const jobpost = await host({ listen: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const ws = await connectWs(jobpost, { token: admin.token })
    const type = unique('flood')
    let calls = 0
    const FLOOD_MS = 1500
    jobpost.processors.register(type, async (_job, { updateProgress }) => {
      const end = Date.now() + FLOOD_MS
      let value = 0
      while (Date.now() < end) {
        // ~1,000 calls a second, each awaited, as a chatty processor does.
        for (let i = 0; i < 5; i++) {
          value = (value + 1) % 97
          await updateProgress(value, { value })
          calls++
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      await updateProgress(73, { value: 73 })
      throw new UnrecoverableError('stops after the flood')
    })
    let progressEvents = 0
    jobpost.hooks.on('job:progress', () => void progressEvents++)
    const job = await jobpost.pluginHooks('t').enqueueJob({ type })
    const final = whenStatus(jobpost, job.jobId, ['failed', 'completed'])
    jobpost.runtime.start()
    await eventually(() => calls > 50)
    // The loop stays responsive during the flood.
    const latencies: number[] = []
    for (let i = 0; i < 10; i++) {
      const startedAt = performance.now()
      await request(jobpost.app).get('/api/v1/jobs/stats').set('Authorization', `Bearer ${admin.token}`).expect(200)
      latencies.push(performance.now() - startedAt)
    }
    expect(await final).toMatchObject({ status: 'failed', progress: 73, metadata: { value: 73 } })
    expect(calls).toBeGreaterThan(200)
    const seconds = FLOOD_MS / 1000
    expect(progressEvents).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 3)
    expect(progressEvents).toBeGreaterThanOrEqual(3)
    expect(Math.max(...latencies)).toBeLessThan(250)
    const updates = ws.messages.filter((m) => m.type === 'job_update' && m.job.jobId === job.jobId && m.job.status === 'running')
    expect(new Set(updates.map((m) => (m.type === 'job_update' ? m.job.progress : -1))).size).toBeGreaterThan(2)
    await ws.next((m) => m.type === 'job_update' && m.job.jobId === job.jobId && m.job.status === 'failed' && m.job.progress === 73)
    await ws.close()
  })

  it('a slot stays taken until a handler that ignores its abort returns; its late result is logged, not written', async (ctx) => {
    if (skip) return ctx.skip()
    const { logger, lines } = capturingLogger()
    const jobpost = await host({ logger })
    const type = unique('stubborn')
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const started: string[] = []
    jobpost.processors.register(
      type,
      async (job) => {
        started.push(job.name)
        if (job.name === 'stubborn') await gate // ignores its signal
        return `${job.name} done`
      },
      { concurrency: 1, timeout: 100, maxAttempts: 1 },
    )
    const stubborn = await jobpost.pluginHooks('t').enqueueJob({ type, name: 'stubborn' })
    const failed = whenStatus(jobpost, stubborn.jobId, ['failed'])
    jobpost.runtime.start()
    expect((await failed).errorMessage).toMatch(/Timed out after 100 ms/)
    const next = await jobpost.pluginHooks('t').enqueueJob({ type, name: 'next' })
    jobpost.runtime.wake()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(started).toEqual(['stubborn'])
    expect(jobpost.runtime.runningCount).toBe(1)
    const nextDone = whenStatus(jobpost, next.jobId, ['completed'])
    release()
    expect(await nextDone).toMatchObject({ result: 'next done' })
    expect(await jobpost.jobs.getJob(stubborn.jobId)).toMatchObject({ status: 'failed', result: null })
    expect(lines.some((line) => line.jobId === stubborn.jobId && /late result/i.test(line.msg) && line.reason === 'timeout')).toBe(true)
  })

  it('a late result after cancel is logged and dropped', async (ctx) => {
    if (skip) return ctx.skip()
    const { logger, lines } = capturingLogger()
    const jobpost = await host({ logger })
    const type = unique('cancel-late')
    jobpost.processors.register(type, async (_job, { signal }) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      return 'too late'
    })
    const job = await jobpost.pluginHooks('t').enqueueJob({ type })
    const running = whenStatus(jobpost, job.jobId, ['running'])
    jobpost.runtime.start()
    await running
    await jobpost.jobs.cancel(job.jobId)
    await jobpost.runtime.whenIdle()
    expect(await jobpost.jobs.getJob(job.jobId)).toMatchObject({ status: 'cancelled', result: null })
    expect(lines.some((line) => line.jobId === job.jobId && /late result/i.test(line.msg) && line.reason === 'cancelled')).toBe(true)
  })

  it('a pause made on another instance aborts the attempt here at once, and reaches a tracked job’s plugin through its lease', async (ctx) => {
    if (skip) return ctx.skip()
    // Two instances on one database (a file for SQLite: events through its outbox).
    const tmp = dialect === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-remote-pause-')) : null
    const shared: DatabaseTarget = tmp ? { dialect: 'sqlite', filename: path.join(tmp, 'jobs.sqlite') } : database
    try {
      // A 30 s lease: renewals (every 10 s) cannot be what tells the running instance.
      const here = await host({ database: shared })
      const there = await host({ database: shared })
      const type = unique('remote-pause')
      const reasons: unknown[] = []
      here.processors.register(type, async (_job, { signal }) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
        reasons.push(signal.reason)
      })
      const job = await here.pluginHooks('t').enqueueJob({ type })
      const running = whenStatus(here, job.jobId, ['running'])
      here.runtime.start()
      await running
      const pausedAt = Date.now()
      await there.jobs.pause(job.jobId)
      await eventually(() => reasons.length === 1, { timeoutMs: 3000 })
      expect(reasons).toEqual(['paused'])
      expect(Date.now() - pausedAt).toBeLessThan(2000)
      await here.runtime.whenIdle()
      expect(await there.jobs.getJob(job.jobId)).toMatchObject({ status: 'paused', attempts: 0 })
    } finally {
      for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
    }
    // A tracked job paused elsewhere: its process learns it from the event (or at the latest at its
    // next renewal: a 30 s lease here, so the event it is) and calls onPause.
    const tmp2 = dialect === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-remote-pause-')) : null
    const shared2: DatabaseTarget = tmp2 ? { dialect: 'sqlite', filename: path.join(tmp2, 'jobs.sqlite') } : database
    try {
      const owner = await host({ database: shared2 })
      const other = await host({ database: shared2 })
      const paused: string[] = []
      const handle = await owner.pluginHooks('tracker').createJob({ name: 'remote', type: unique('tracked'), onPause: (job) => void paused.push(job.status) })
      await handle.start()
      await other.jobs.pause(handle.jobId)
      await eventually(() => paused.length === 1, { timeoutMs: 3000 })
      expect(paused).toEqual(['paused'])
      await expect(handle.updateProgress(50)).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    } finally {
      for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
      if (tmp2) fs.rmSync(tmp2, { recursive: true, force: true })
    }
  })

  it('keeps renewing leases while a shutdown drains, so another instance does not recover the draining job; each requeue is logged', async (ctx) => {
    if (skip) return ctx.skip()
    // Two instances on one database (a file for SQLite).
    const tmp = dialect === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-drain-')) : null
    const shared: DatabaseTarget = tmp ? { dialect: 'sqlite', filename: path.join(tmp, 'jobs.sqlite') } : database
    const { logger, lines } = capturingLogger()
    const draining = await host({ leaseMs: 600, logger, database: shared })
    const other = await host({ leaseMs: 600, database: shared })
    const type = unique('drain')
    let finish!: () => void
    const slow = new Promise<void>((resolve) => (finish = resolve))
    draining.processors.register(type, async (job) => {
      if (job.name === 'slow') await slow
      else await new Promise(() => undefined) // never ends: released at the end of the grace
      return 'drained'
    })
    const job = await draining.pluginHooks('t').enqueueJob({ type, name: 'slow' })
    const stuck = await draining.pluginHooks('t').enqueueJob({ type, name: 'stuck' })
    draining.runtime.start()
    await eventually(() => draining.runtime.runningCount === 2)
    const stopped = draining.runtime.stop({ graceMs: 2500 })
    // Two leases long: without heartbeats the other instance would take both jobs back.
    await new Promise((resolve) => setTimeout(resolve, 1300))
    expect(await other.runtime.recover()).toBe(0)
    finish()
    await stopped
    expect(await draining.jobs.getJob(job.jobId)).toMatchObject({ status: 'completed', result: 'drained' })
    expect(await draining.jobs.getJob(stuck.jobId)).toMatchObject({ status: 'pending', attempts: 0 })
    expect(lines.some((line) => line.jobId === stuck.jobId && /given back to the queue/.test(line.msg))).toBe(true)
    if (tmp) {
      for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })
})
