import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../core/clock.js'
import type { Job } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { UnrecoverableError } from '../core/errors.js'
import { eventually, startJobpost } from './support/harness.js'

let current: Jobpost | undefined
afterEach(async () => {
  await current?.close({ graceMs: 100 })
  current = undefined
})

async function runtimeHost(options: { concurrency?: number; clock?: ManualClock; leaseMs?: number; pollMs?: number } = {}) {
  current = await startJobpost(
    { workerConcurrency: options.concurrency ?? 10, workerLeaseMs: options.leaseMs ?? 30_000, workerPollMs: options.pollMs ?? 50 },
    { clock: options.clock, listen: false },
  )
  return { jobpost: current, hooks: current.pluginHooks('runtime-test') }
}

/** Resolves with the job when it reaches a final status. */
function whenFinal(jobpost: Jobpost, jobId: string): Promise<Job> {
  return new Promise((resolve) => {
    const check = ({ job }: { job: Job }) => {
      if (job.jobId === jobId && ['completed', 'failed', 'cancelled', 'completed_with_errors'].includes(job.status)) resolve(job)
    }
    jobpost.hooks.on('job:completed', check)
    jobpost.hooks.on('job:failed', check)
    jobpost.hooks.on('job:cancelled', check)
  })
}

describe('JobRuntime', () => {
  it('runs 200 jobs with concurrency 3, never more than 3 at once, and completes them all', async () => {
    const { jobpost, hooks } = await runtimeHost({ concurrency: 10 })
    let running = 0
    let peak = 0
    hooks.registerJobProcessor(
      'count',
      async (job) => {
        running++
        peak = Math.max(peak, running)
        await new Promise((r) => setTimeout(r, 1 + (job.id % 3)))
        running--
        return { n: (job.data as { n: number }).n }
      },
      { concurrency: 3 },
    )
    const jobs = await hooks.enqueueJobs(Array.from({ length: 200 }, (_, n) => ({ type: 'count', data: { n } })))
    jobpost.runtime.start()
    await eventually(async () => (await hooks.getJobs({ type: 'count', status: 'completed', limit: 1 })).total === 200, { timeoutMs: 20_000 })
    expect(peak).toBe(3)
    const sample = await hooks.getJob(jobs[123]!.jobId)
    expect(sample).toMatchObject({ status: 'completed', attempts: 1, result: { n: 123 }, progress: 100 })
  })

  it('respects the global concurrency across types', async () => {
    const { jobpost, hooks } = await runtimeHost({ concurrency: 2 })
    let running = 0
    let peak = 0
    const handler = async () => {
      running++
      peak = Math.max(peak, running)
      await new Promise((r) => setTimeout(r, 3))
      running--
    }
    hooks.registerJobProcessor('a', handler)
    hooks.registerJobProcessor('b', handler)
    await hooks.enqueueJobs(Array.from({ length: 30 }, (_, i) => ({ type: i % 2 ? 'a' : 'b' })))
    jobpost.runtime.start()
    await eventually(async () => (await hooks.getJobs({ status: 'completed', limit: 1 })).total === 30, { timeoutMs: 10_000 })
    expect(peak).toBe(2)
  })

  it('claims the highest priority first, then the oldest runAt, and never before runAt', async () => {
    const clock = new ManualClock(Date.parse('2026-05-01T00:00:00.000Z'))
    const { jobpost, hooks } = await runtimeHost({ concurrency: 1, clock })
    const order: string[] = []
    hooks.registerJobProcessor('ordered', async (job) => void order.push(job.name), { concurrency: 1 })
    await hooks.enqueueJob({ type: 'ordered', name: 'low-old', priority: -5 })
    clock.advance(10)
    await hooks.enqueueJob({ type: 'ordered', name: 'normal-old' })
    clock.advance(10)
    await hooks.enqueueJob({ type: 'ordered', name: 'normal-new' })
    await hooks.enqueueJob({ type: 'ordered', name: 'urgent', priority: 10 })
    await hooks.enqueueJob({ type: 'ordered', name: 'urgent-later', priority: 10, delay: 60_000 })
    await hooks.enqueueJob({ type: 'ordered', name: 'normal-runAt-past', runAt: '2026-04-30T00:00:00.000Z' })
    jobpost.runtime.start()
    await eventually(() => order.length === 5)
    expect(order).toEqual(['urgent', 'normal-runAt-past', 'normal-old', 'normal-new', 'low-old'])
    // the delayed job waits for its time, even though it has the highest priority
    jobpost.runtime.wake()
    await new Promise((r) => setTimeout(r, 100))
    expect(order).toHaveLength(5)
    clock.advance(60_000)
    jobpost.runtime.wake()
    await eventually(() => order.length === 6)
    expect(order[5]).toBe('urgent-later')
  })

  it('retries a flaky handler with its backoff delays (2 s, 4 s) and succeeds on attempt 3', async () => {
    const clock = new ManualClock(Date.parse('2026-05-01T00:00:00.000Z'))
    const { jobpost, hooks } = await runtimeHost({ clock, pollMs: 10_000 })
    const attempts: { attempt: number; at: number }[] = []
    hooks.registerJobProcessor('flaky', async (_job, { attempt }) => {
      attempts.push({ attempt, at: clock.now() })
      if (attempt < 3) throw new Error(`flake ${attempt}`)
      return 'finally'
    })
    const retries: { delayMs: number; error: string; runAt: string }[] = []
    hooks.on('job:retry', ({ job, delayMs, error }) => void retries.push({ delayMs, error, runAt: job.runAt }))
    const job = await hooks.enqueueJob({ type: 'flaky' })
    expect(job.maxAttempts).toBe(3)
    const final = whenFinal(jobpost, job.jobId)
    jobpost.runtime.start()
    await eventually(() => retries.length === 1)
    expect(retries[0]).toMatchObject({ delayMs: 2000, error: 'Attempt 1 failed: flake 1', runAt: new Date(clock.now() + 2000).toISOString() })
    clock.advance(1999)
    jobpost.runtime.wake()
    await new Promise((r) => setTimeout(r, 50))
    expect(attempts).toHaveLength(1)
    clock.advance(1)
    jobpost.runtime.wake()
    await eventually(() => retries.length === 2)
    expect(retries[1]!.delayMs).toBe(4000)
    clock.advance(4000)
    jobpost.runtime.wake()
    expect(await final).toMatchObject({ status: 'completed', attempts: 3, result: 'finally' })
    expect(attempts.map((a) => a.at - attempts[0]!.at)).toEqual([0, 2000, 6000])
  })

  it('fails at once, without retry, on UnrecoverableError or a returned { retryable: false }', async () => {
    const { jobpost, hooks } = await runtimeHost()
    let calls = 0
    hooks.registerJobProcessor('fatal', async () => {
      calls++
      throw new UnrecoverableError('bad input, do not retry')
    })
    hooks.registerJobProcessor('returns-fatal', async () => ({ success: false, error: 'invalid email', retryable: false }))
    const a = await hooks.enqueueJob({ type: 'fatal', maxAttempts: 5 })
    const b = await hooks.enqueueJob({ type: 'returns-fatal', maxAttempts: 5 })
    const finals = Promise.all([whenFinal(jobpost, a.jobId), whenFinal(jobpost, b.jobId)])
    jobpost.runtime.start()
    const [fa, fb] = await finals
    expect(fa).toMatchObject({ status: 'failed', attempts: 1, errorMessage: 'bad input, do not retry' })
    expect(fb).toMatchObject({ status: 'failed', attempts: 1, errorMessage: 'invalid email' })
    expect(calls).toBe(1)
  })

  it('uses a retryDelay asked for by the handler', async () => {
    const { jobpost, hooks } = await runtimeHost({ pollMs: 10_000 })
    hooks.registerJobProcessor('rate-limited', async () => {
      throw Object.assign(new Error('429'), { retryDelay: 12_345 })
    })
    const retried = new Promise<number>((resolve) => hooks.on('job:retry', ({ delayMs }) => resolve(delayMs)))
    await hooks.enqueueJob({ type: 'rate-limited' })
    jobpost.runtime.start()
    expect(await retried).toBe(12_345)
  })

  it('aborts the signal at the timeout, counts a failed attempt and retries', async () => {
    const { jobpost, hooks } = await runtimeHost()
    const aborts: string[] = []
    hooks.registerJobProcessor(
      'slow',
      (_job, { signal, attempt }) =>
        new Promise((resolve, reject) => {
          if (attempt === 2) return resolve('fast enough')
          signal.addEventListener('abort', () => {
            aborts.push(String(signal.reason))
            reject(signal.reason)
          })
        }),
      { timeout: 50, backoff: { type: 'fixed', delay: 0 } },
    )
    const job = await hooks.enqueueJob({ type: 'slow' })
    const final = whenFinal(jobpost, job.jobId)
    jobpost.runtime.start()
    expect(await final).toMatchObject({ status: 'completed', attempts: 2, result: 'fast enough' })
    expect(aborts).toEqual(['timeout'])
  })

  it('cancels a running job: the signal aborts, the status is cancelled and the late result is ignored', async () => {
    const { jobpost, hooks } = await runtimeHost()
    let sawAbort = false
    hooks.registerJobProcessor('cancellable', async (_job, { signal }) => {
      await new Promise((r) => signal.addEventListener('abort', r))
      sawAbort = true
      return 'late result'
    })
    const job = await hooks.enqueueJob({ type: 'cancellable' })
    jobpost.runtime.start()
    await eventually(async () => (await hooks.getJob(job.jobId))?.status === 'running')
    await jobpost.jobs.cancel(job.jobId)
    await jobpost.runtime.whenIdle()
    expect(sawAbort).toBe(true)
    expect(await hooks.getJob(job.jobId)).toMatchObject({ status: 'cancelled', result: null })
  })

  it('pause keeps a pending job from starting until resume; pausing a running job aborts its attempt (reason paused, not counted)', async () => {
    const { jobpost, hooks } = await runtimeHost()
    const ran: string[] = []
    const reasons: unknown[] = []
    hooks.registerJobProcessor('pausable', async (job, { signal, attempt }) => {
      ran.push(`${job.name}#${attempt}`)
      if (job.name === 'gated' && reasons.length === 0) {
        await new Promise((_, reject) => signal.addEventListener('abort', () => (reasons.push(signal.reason), reject(signal.reason))))
      }
      return job.name
    })
    const waiting = await hooks.enqueueJob({ type: 'pausable', name: 'waiting' })
    await jobpost.jobs.pause(waiting.jobId)
    const gated = await hooks.enqueueJob({ type: 'pausable', name: 'gated' })
    jobpost.runtime.start()
    await eventually(() => ran.includes('gated#1'))
    expect((await jobpost.jobs.pause(gated.jobId)).status).toBe('paused')
    await jobpost.runtime.whenIdle()
    expect(reasons).toEqual(['paused'])
    // Paused means no code of the job runs; the attempt was not counted.
    expect(await hooks.getJob(gated.jobId)).toMatchObject({ status: 'paused', attempts: 0 })
    expect(ran).toEqual(['gated#1'])
    const final = whenFinal(jobpost, gated.jobId)
    expect((await jobpost.jobs.resume(gated.jobId)).status).toBe('pending')
    // Run again from the start, as attempt 1 (the paused one did not count).
    expect(await final).toMatchObject({ status: 'completed', result: 'gated', attempts: 1 })
    expect(ran).toEqual(['gated#1', 'gated#1'])
    expect((await jobpost.jobs.resume(waiting.jobId)).status).toBe('pending')
    expect(await whenFinal(jobpost, waiting.jobId)).toMatchObject({ status: 'completed' })
  })

  it('refuses a settle with a stale attempt token, so a worker that lost its lease cannot overwrite', async () => {
    const clock = new ManualClock(Date.parse('2026-05-01T00:00:00.000Z'))
    const { jobpost, hooks } = await runtimeHost({ clock })
    hooks.registerJobProcessor('fenced', async () => 'x') // registered, but this runtime never starts
    const job = await hooks.enqueueJob({ type: 'fenced' })
    const [first] = await jobpost.jobs.claimDueJobs({ slots: new Map([['fenced', 1]]), limit: 1, leaseMs: 1000 })
    expect(first).toMatchObject({ status: 'running', attempts: 1 })
    clock.advance(1001)
    const [expired] = await jobpost.jobs.findExpiredLeases(10)
    expect(expired!.jobId).toBe(job.jobId)
    expect(await jobpost.jobs.recoverExpiredLease(expired!, 0)).toMatchObject({ status: 'pending' })
    const [second] = await jobpost.jobs.claimDueJobs({ slots: new Map([['fenced', 1]]), limit: 1, leaseMs: 1000 })
    expect(second).toMatchObject({ status: 'running', attempts: 2 })
    expect(second!.attemptToken).not.toBe(first!.attemptToken)
    const before = await hooks.getJob(job.jobId)
    await expect(jobpost.jobs.complete(job.jobId, 'stale', { attemptToken: first!.attemptToken! })).rejects.toMatchObject({ code: 'LEASE_LOST' })
    await expect(jobpost.jobs.updateProgress(job.jobId, 50, undefined, { attemptToken: first!.attemptToken! })).rejects.toMatchObject({ code: 'LEASE_LOST' })
    expect(await hooks.getJob(job.jobId)).toEqual(before)
    expect(await jobpost.jobs.complete(job.jobId, 'fresh', { attemptToken: second!.attemptToken! })).toMatchObject({ status: 'completed', result: 'fresh' })
  })

  it('recovers a job whose lease expired, and fails it when no attempts are left', async () => {
    const clock = new ManualClock(Date.parse('2026-05-01T00:00:00.000Z'))
    const { jobpost, hooks } = await runtimeHost({ clock })
    hooks.registerJobProcessor('dies', async () => 'x')
    const job = await hooks.enqueueJob({ type: 'dies', maxAttempts: 1 })
    await jobpost.jobs.claimDueJobs({ slots: new Map([['dies', 1]]), limit: 1, leaseMs: 1000 })
    clock.advance(500)
    expect(await jobpost.runtime.recover()).toBe(0)
    clock.advance(501)
    expect(await jobpost.runtime.recover()).toBe(1)
    expect(await hooks.getJob(job.jobId)).toMatchObject({ status: 'failed', attempts: 1 })
    expect((await hooks.getJob(job.jobId))!.errorMessage).toMatch(/lease expired/)
  })

  it('queues a job created over REST when its type has a processor, and runs it', async () => {
    const { jobpost, hooks } = await runtimeHost()
    hooks.registerJobProcessor('rest-type', async (job) => ({ echo: job.data }))
    const [record] = await jobpost.jobs.createJobs([{ name: 'via rest', type: 'rest-type', data: { a: 1 } }])
    expect(record!.queued).toBe(true)
    const [tracked] = await jobpost.jobs.createJobs([{ name: 'tracked', type: 'no-processor' }])
    expect(tracked!.queued).toBe(false)
    const final = whenFinal(jobpost, record!.jobId)
    jobpost.runtime.start()
    expect(await final).toMatchObject({ status: 'completed', result: { echo: { a: 1 } } })
    expect((await hooks.getJob(tracked!.jobId))!.status).toBe('pending')
  })

  it('on stop, waits for running attempts, then aborts and releases them without counting the attempt', async () => {
    const { jobpost, hooks } = await runtimeHost()
    hooks.registerJobProcessor('stubborn', (_job, { signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))))
    const job = await hooks.enqueueJob({ type: 'stubborn' })
    jobpost.runtime.start()
    await eventually(async () => (await hooks.getJob(job.jobId))?.status === 'running')
    await jobpost.runtime.stop({ graceMs: 50 })
    expect(await hooks.getJob(job.jobId)).toMatchObject({ status: 'pending', attempts: 0 })
  })
})
