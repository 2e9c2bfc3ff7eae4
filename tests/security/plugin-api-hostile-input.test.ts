import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import type { PluginHooks } from '../../core/hooks/pluginHooks.js'
import { startJobpost } from '../support/harness.js'
import { jobCount, snapshot } from './support/jobs.js'

/**
 * Hostile input through the plugin API (`hooks.*`, the Job handle, a processor's context) and
 * settle calls with stale attempt tokens: a ValidationError / LEASE_LOST, a clamped value, and no
 * change of state otherwise.
 */
describe('plugin API: hostile input', () => {
  let jobpost: Jobpost
  let hooks: PluginHooks

  beforeAll(async () => {
    jobpost = await startJobpost()
    hooks = jobpost.pluginHooks('hostile-plugin')
  })
  afterAll(() => jobpost.close())

  it('createJob / enqueueJob refuse unknown fields, __proto__, deep and huge payloads, and create nothing', async () => {
    const count = await jobCount(jobpost)
    const bad: unknown[] = [
      { name: 'x', type: 't', status: 'completed' },
      { name: 'x', type: 't', attemptToken: 'mine' },
      JSON.parse('{"name":"x","type":"t","__proto__":{"polluted":1}}'),
      JSON.parse('{"name":"x","type":"t","metadata":{"__proto__":{"polluted":1}}}'),
      { name: 'x', type: 't', metadata: { constructor: { prototype: { polluted: 1 } } } },
      { name: 'x', type: 't', metadata: JSON.parse('{"a":'.repeat(50) + '1' + '}'.repeat(50)) },
      { name: 'x', type: 't', data: JSON.parse('['.repeat(10_000) + ']'.repeat(10_000)) },
      { name: 'x', type: 't', data: 'd'.repeat(300 * 1024) },
      { name: 'x', type: 't', metadata: { n: Number.NaN } },
      { name: 'x', type: 't', data: { n: Infinity } },
      { name: 'x', type: 't', data: { big: 10n } },
      { name: 'x', type: 't', data: { fn: () => 1 } },
      { name: 'x', type: 't', delay: -1 },
      { name: 'x', type: 't', createdBy: -1 },
      { name: 'x', type: 't', parentJobId: '1 OR 1=1' },
      { name: 'x', type: '1 OR 1=1' },
      { name: 'x', type: 't', timeout: Number.POSITIVE_INFINITY },
      null,
      'job',
    ]
    for (const input of bad) {
      await expect(hooks.createJob(input as never), JSON.stringify(String(input)).slice(0, 80)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    }
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await expect(hooks.createJob({ name: 'x', type: 't', metadata: circular })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(hooks.enqueueJob({ type: 't', data: circular })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    // One bad job in a batch: the whole batch is refused.
    await expect(hooks.enqueueJobs([{ type: 'ok' }, { type: 'ok', status: 'failed' } as never])).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    expect(await jobCount(jobpost)).toBe(count)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('getJobs / getJob / cleanupOldJobs refuse bad filters and odd ids without touching anything', async () => {
    for (const filters of [{ limit: 1e9 }, { limit: 0 }, { limit: -1 }, { limit: Number.NaN }, { limit: 1.5 }, { offset: -1 }, { status: 'bogus' as never }]) {
      await expect(hooks.getJobs(filters)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    }
    for (const id of ['1 OR 1=1', "' OR '1'='1", 'x'.repeat(100_000), '', '00000000-0000-4000-8000-000000000000']) {
      expect(await hooks.getJob(id)).toBeNull()
    }
    for (const days of [0, -1, Number.NaN, Infinity, 1.5, 3651, '30' as never]) {
      await expect(hooks.cleanupOldJobs(days)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    }
  })

  it('registerJobProcessor refuses bad types and options', () => {
    expect(() => hooks.registerJobProcessor('1 OR 1=1', () => null)).toThrow(/Invalid job type/)
    expect(() => hooks.registerJobProcessor('ok-type', 'not a function' as never)).toThrow()
    expect(() => hooks.registerJobProcessor('ok-type', () => null, { concurrency: 0 })).toThrow()
    expect(() => hooks.registerJobProcessor('ok-type', () => null, { maxAttempts: 1e9 })).toThrow()
    expect(() => hooks.registerJobProcessor('ok-type', () => null, { timeout: -5 })).toThrow()
    expect(() => hooks.registerJobProcessor('ok-type', () => null, { unknown: 1 } as never)).toThrow()
    expect(jobpost.processors.has('ok-type')).toBe(false)
  })

  describe('progress values', () => {
    it('-5 → 0 and 150 → 100 (clamped); NaN and "50" are refused with the job unchanged', async () => {
      const job = await hooks.createJob({ name: 'Progress', type: 'progress' })
      await job.start()
      expect((await job.updateProgress(-5)).progress).toBe(0)
      expect((await job.updateProgress(150)).progress).toBe(100)
      expect((await job.updateProgress(42.6)).progress).toBe(43)
      const before = await snapshot(jobpost, job.jobId)
      for (const value of [Number.NaN, '50', null, undefined, {}, [50]]) {
        await expect(job.updateProgress(value as never), String(value)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
      }
      await expect(job.updateProgress(10, JSON.parse('{"__proto__":{"x":1}}'))).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
      await expect(job.updateProgress(10, [] as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
      await expect(job.updateProgress(10, { big: 'b'.repeat(70 * 1024) })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
      expect(await snapshot(jobpost, job.jobId)).toEqual(before)
      // Infinity is a number: it clamps rather than poisoning the row.
      expect((await job.updateProgress(Infinity)).progress).toBe(100)
      expect((await job.updateProgress(-Infinity)).progress).toBe(0)
      await job.complete()
      // After the end nothing moves: progress on a completed job is an illegal transition.
      const done = await snapshot(jobpost, job.jobId)
      await expect(job.updateProgress(10)).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
      await expect(job.fail('late')).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
      await expect(job.start()).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
      expect(await snapshot(jobpost, job.jobId)).toEqual(done)
    })

    it('a processor reporting -5 / 150 / NaN / "50" gets clamps and refusals, and its job still completes', async () => {
      const seen: unknown[] = []
      const written: number[] = []
      // Progress is written behind (issue 12): the values written are seen as job:progress events.
      jobpost.hooks.on('job:progress', ({ job }) => void (job.type === 'hostile-progress' && written.push(job.progress)))
      hooks.registerJobProcessor('hostile-progress', async (_job, { updateProgress }) => {
        for (const value of [-5, 150, Number.NaN, '50']) {
          try {
            await updateProgress(value as number)
            seen.push('accepted')
          } catch (error) {
            seen.push((error as { code?: string }).code)
          }
        }
        return { ok: true }
      })
      const finished = new Promise((resolve) => jobpost.hooks.on('job:completed', ({ job }) => job.type === 'hostile-progress' && resolve(job)))
      jobpost.runtime.start()
      try {
        const job = await hooks.enqueueJob({ type: 'hostile-progress' })
        expect(await finished).toMatchObject({ jobId: job.jobId, status: 'completed', progress: 100, result: { ok: true } })
        expect(seen).toEqual(['accepted', 'accepted', 'VALIDATION_FAILED', 'VALIDATION_FAILED'])
        expect(written).toEqual([0, 100])
      } finally {
        await jobpost.runtime.stop()
      }
    })
  })

  describe('settle calls with stale attempt tokens', () => {
    it('complete / fail / requeue / progress with a stale or made-up token → LEASE_LOST, row unchanged', async () => {
      const processors = new Map([['stale', 1]])
      jobpost.processors.register('stale', () => new Promise(() => undefined))
      const queued = await hooks.enqueueJob({ type: 'stale', maxAttempts: 3 })
      const [first] = await jobpost.jobs.claimDueJobs({ slots: processors, limit: 1, leaseMs: 60_000 })
      expect(first!.jobId).toBe(queued.jobId)
      // The first attempt is given back (as if its lease expired) and a second attempt claims the job.
      await jobpost.jobs.requeue(queued.jobId, 'lease expired', 0, { attemptToken: first!.attemptToken! })
      const [second] = await jobpost.jobs.claimDueJobs({ slots: processors, limit: 1, leaseMs: 60_000 })
      expect(second!.attemptToken).not.toBe(first!.attemptToken)
      const before = await snapshot(jobpost, queued.jobId)
      for (const token of [first!.attemptToken!, 'made-up', '', "' OR 1=1 --"]) {
        const options = { attemptToken: token }
        await expect(jobpost.jobs.complete(queued.jobId, { stolen: true }, options)).rejects.toMatchObject({ code: 'LEASE_LOST' })
        await expect(jobpost.jobs.fail(queued.jobId, 'stale', options)).rejects.toMatchObject({ code: 'LEASE_LOST' })
        await expect(jobpost.jobs.requeue(queued.jobId, 'stale', 0, options)).rejects.toMatchObject({ code: 'LEASE_LOST' })
        await expect(jobpost.jobs.updateProgress(queued.jobId, 99, undefined, options)).rejects.toMatchObject({ code: 'LEASE_LOST' })
      }
      expect(await jobpost.jobs.renewLeases([first!.attemptToken!], 1)).toEqual(new Set())
      expect(await snapshot(jobpost, queued.jobId)).toEqual(before)
      // The current token still works, once.
      const done = await jobpost.jobs.complete(queued.jobId, { ok: 1 }, { attemptToken: second!.attemptToken! })
      expect(done.status).toBe('completed')
      await expect(jobpost.jobs.complete(queued.jobId, { again: 1 }, { attemptToken: second!.attemptToken! })).rejects.toMatchObject({
        code: expect.stringMatching(/LEASE_LOST|ILLEGAL_TRANSITION/),
      })
      expect((await snapshot(jobpost, queued.jobId)).result).toEqual({ ok: 1 })
    })

    it('a settle racing a cancel: exactly one wins, the other is refused', async () => {
      jobpost.processors.register('race', () => new Promise(() => undefined))
      const queued = await hooks.enqueueJob({ type: 'race' })
      const [claimed] = await jobpost.jobs.claimDueJobs({ slots: new Map([['race', 1]]), limit: 1, leaseMs: 60_000 })
      const results = await Promise.allSettled([
        jobpost.jobs.complete(queued.jobId, 'done', { attemptToken: claimed!.attemptToken! }),
        jobpost.jobs.cancel(queued.jobId),
      ])
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
      const final = await snapshot(jobpost, queued.jobId)
      expect(['completed', 'cancelled']).toContain(final.status)
      expect(final.lockedUntil).toBeNull()
      expect(await jobpost.jobs.findExpiredLeases(10)).toEqual([])
    })
  })
})
