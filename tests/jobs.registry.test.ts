import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../core/clock.js'
import type { Jobpost } from '../core/createJobpost.js'
import type { PluginHooks } from '../core/hooks/pluginHooks.js'
import { startJobpost } from './support/harness.js'

describe('RegisterJobs and the job handle', () => {
  let jobpost: Jobpost
  let hooks: PluginHooks
  const clock = new ManualClock(Date.parse('2026-03-01T12:00:00.000Z'))

  beforeAll(async () => {
    jobpost = await startJobpost({}, { clock, listen: false })
    hooks = jobpost.pluginHooks('test-plugin')
  })
  afterAll(() => jobpost.close())

  /** The job's meta rows as stored, to prove that a refused call changed nothing. */
  const rawMeta = async (jobId: string) => {
    const post = await jobpost.db.knex('posts').where({ post_type_slug: 'jobs', slug: jobId }).first()
    const rows = await jobpost.db.knex('post_meta').where('post_id', post.id).orderBy('meta_key')
    return { post, rows }
  }

  it('stores a job as one post, one typed state row and meta rows only for the fields that are set', async () => {
    const job = await hooks.createJob({ name: 'Import Products', type: 'import', description: 'From the API', metadata: { apiUrl: 'https://api.example.com' } })
    const { post, rows } = await rawMeta(job.jobId)
    expect(post).toMatchObject({ post_type_slug: 'jobs', slug: job.jobId, title: 'Import Products' })
    expect(job.jobId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    // The queue's fields are one typed row; the rest is meta (no row for what is empty).
    expect(rows.map((r: { meta_key: string }) => r.meta_key)).toEqual(['description', 'metadata'])
    const state = await jobpost.db.knex('job_state').where('post_id', post.id).first()
    expect(state).toMatchObject({ type: 'import', status: 'pending', progress: 0, source: 'test-plugin', owner: 'p:test-plugin', priority: 0, attempts: 0 })
    expect(state.created_at).toBe(Date.parse('2026-03-01T12:00:00.000Z'))
    const stored = await job.get()
    expect(stored).toMatchObject({ status: 'pending', progress: 0, source: 'test-plugin', metadata: { apiUrl: 'https://api.example.com' }, showNotification: true, createdAt: '2026-03-01T12:00:00.000Z' })
    expect(await jobpost.db.knex.schema.hasTable('jobs')).toBe(false)
  })

  it('runs the seed lifecycle: start, progress with merged metadata, complete with a result', async () => {
    const job = await hooks.createJob({ name: 'Backup', type: 'backup', metadata: { kind: 'full' } })
    clock.advance(1000)
    const started = await job.start()
    expect(started).toMatchObject({ status: 'running', attempts: 1, startedAt: '2026-03-01T12:00:01.000Z' })
    await job.updateProgress(40, { table: 'users' })
    const p = await job.updateProgress(75.4, { bytes: 10 })
    expect(p).toMatchObject({ progress: 75, metadata: { kind: 'full', table: 'users', bytes: 10 } })
    clock.advance(1000)
    const done = await job.complete({ file: 'db.sql.gz' })
    expect(done).toMatchObject({ status: 'completed', progress: 100, result: { file: 'db.sql.gz' }, completedAt: '2026-03-01T12:00:02.000Z' })
  })

  it.each([0, false, '', null])('stores a falsy result (%j)', async (value) => {
    const job = await hooks.createJob({ name: 'falsy', type: 't' })
    await job.start()
    expect((await job.complete(value)).result).toBe(value)
    expect((await job.get()).result).toBe(value)
  })

  it('refuses every illegal transition with ILLEGAL_TRANSITION and leaves the row unchanged', async () => {
    const cases: { setup: (h: Awaited<ReturnType<PluginHooks['createJob']>>) => Promise<unknown>; illegal: (h: Awaited<ReturnType<PluginHooks['createJob']>>) => Promise<unknown>; name: string }[] = [
      { name: 'complete after fail', setup: async (h) => (await h.start(), h.fail('x')), illegal: (h) => h.complete() },
      { name: 'progress after complete', setup: async (h) => (await h.start(), h.complete()), illegal: (h) => h.updateProgress(50) },
      { name: 'start twice', setup: (h) => h.start(), illegal: (h) => h.start() },
      { name: 'complete before start', setup: async () => undefined, illegal: (h) => h.complete() },
      { name: 'progress before start', setup: async () => undefined, illegal: (h) => h.updateProgress(10) },
      { name: 'cancel after complete', setup: async (h) => (await h.start(), h.complete()), illegal: (h) => h.cancel() },
      { name: 'fail after cancel', setup: (h) => h.cancel(), illegal: (h) => h.fail('late') },
      { name: 'start after cancel', setup: (h) => h.cancel(), illegal: (h) => h.start() },
    ]
    for (const c of cases) {
      const handle = await hooks.createJob({ name: c.name, type: 't' })
      await c.setup(handle)
      const before = await rawMeta(handle.jobId)
      clock.advance(10)
      await expect(c.illegal(handle), c.name).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
      expect(await rawMeta(handle.jobId), c.name).toEqual(before)
    }
  })

  it('lets exactly one of concurrent complete() and fail() win', async () => {
    for (let i = 0; i < 10; i++) {
      const job = await hooks.createJob({ name: `race ${i}`, type: 'race' })
      await job.start()
      const finals: string[] = []
      const off = hooks.on('job:completed', ({ job: j }) => void (j.jobId === job.jobId && finals.push('completed')))
      const off2 = hooks.on('job:failed', ({ job: j }) => void (j.jobId === job.jobId && finals.push('failed')))
      const off3 = hooks.on('job:cancelled', ({ job: j }) => void (j.jobId === job.jobId && finals.push('cancelled')))
      const results = await Promise.allSettled([job.complete('ok'), job.fail('boom'), job.cancel()])
      off()
      off2()
      off3()
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
      for (const r of results) if (r.status === 'rejected') expect(r.reason.code).toBe('ILLEGAL_TRANSITION')
      expect(finals).toHaveLength(1)
      expect((await job.get()).status).toBe(finals[0])
    }
  })

  it('serialises progress writes per job, so the last call wins', async () => {
    const job = await hooks.createJob({ name: 'progress order', type: 't' })
    await job.start()
    await Promise.all([10, 20, 30, 40, 50, 60, 70, 80, 90, 95].map((p) => job.updateProgress(p)))
    expect((await job.get()).progress).toBe(95)
  })

  it('validates progress: clamps numbers to 0..100, rejects NaN and strings without writing', async () => {
    const job = await hooks.createJob({ name: 'bad progress', type: 't' })
    await job.start()
    expect((await job.updateProgress(150)).progress).toBe(100)
    expect((await job.updateProgress(-5)).progress).toBe(0)
    await expect(job.updateProgress(Number.NaN)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(job.updateProgress('50' as unknown as number)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    expect((await job.get()).progress).toBe(0)
  })

  it('fails a tracked job at its timeout, aborts its signal, and a later complete() cannot overwrite it', async () => {
    const job = await hooks.createJob({ name: 'slow', type: 't', timeout: 30 })
    const failed = new Promise((resolve) => hooks.on('job:failed', ({ job: j }) => void (j.jobId === job.jobId && resolve(j))))
    await job.start()
    await failed
    expect(job.signal.aborted).toBe(true)
    await expect(job.complete('too late')).rejects.toMatchObject({ code: 'ILLEGAL_TRANSITION' })
    expect(await job.get()).toMatchObject({ status: 'failed', errorMessage: 'Timed out after 30 ms.', result: null })
  })

  it('aborts the signal of a cancelled tracked job', async () => {
    const job = await hooks.createJob({ name: 'to cancel', type: 't' })
    await job.start()
    await job.cancel()
    expect(job.signal.aborted).toBe(true)
  })

  it('filters in SQL before paging, with the right totals, over a few hundred jobs of mixed status', async () => {
    const statuses = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const
    const created = await jobpost.jobs.createJobs(
      Array.from({ length: 300 }, (_, i) => ({ name: `Bulk ${i}${i % 7 === 0 ? ' needle' : ''}`, type: i % 2 ? 'odd' : 'even', source: i % 3 ? 'plugin-a' : 'plugin-b' })),
    )
    for (const [i, record] of created.entries()) {
      const status = statuses[i % 5]!
      if (status === 'pending') continue
      if (status === 'cancelled') await jobpost.jobs.cancel(record.jobId)
      else {
        await jobpost.jobs.start(record.jobId)
        if (status === 'completed') await jobpost.jobs.complete(record.jobId, i)
        if (status === 'failed') await jobpost.jobs.fail(record.jobId, 'x')
      }
    }
    const expected = (pred: (i: number) => boolean) => created.filter((_, i) => pred(i)).length
    const running = await hooks.getJobs({ status: 'running', type: 'odd', limit: 7, offset: 0 })
    expect(running.total).toBe(expected((i) => i % 5 === 1 && i % 2 === 1))
    expect(running.jobs).toHaveLength(7)
    expect(running.jobs.every((j) => j.status === 'running' && j.type === 'odd')).toBe(true)
    const multi = await hooks.getJobs({ status: ['completed', 'failed'], source: 'plugin-b', limit: 500 })
    expect(multi.total).toBe(expected((i) => (i % 5 === 2 || i % 5 === 3) && i % 3 === 0))
    const search = await hooks.getJobs({ search: 'NEEDLE', limit: 5, offset: 5 })
    expect(search.total).toBe(expected((i) => i % 7 === 0))
    expect(search.jobs).toHaveLength(5)
    // newest first, and pages do not overlap
    const page1 = await hooks.getJobs({ type: 'even', limit: 50, offset: 0 })
    const page2 = await hooks.getJobs({ type: 'even', limit: 50, offset: 50 })
    expect(page1.jobs[0]!.id).toBeGreaterThan(page1.jobs[49]!.id)
    expect(page1.jobs[49]!.id).toBeGreaterThan(page2.jobs[0]!.id)
    await expect(hooks.getJobs({ limit: 501 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  })

  it('cleans up only finished jobs older than the cutoff, keeping active ones', async () => {
    const old = await hooks.createJob({ name: 'old done', type: 'cleanup' })
    await old.start()
    await old.complete()
    const oldFailed = await hooks.createJob({ name: 'old failed', type: 'cleanup' })
    await oldFailed.fail('x')
    const oldRunning = await hooks.createJob({ name: 'old running', type: 'cleanup' })
    await oldRunning.start()
    const oldPending = await hooks.createJob({ name: 'old pending', type: 'cleanup' })
    clock.advance(31 * 24 * 3600 * 1000)
    const recent = await hooks.createJob({ name: 'recent done', type: 'cleanup' })
    await recent.start()
    await recent.complete()
    const before = (await hooks.getJobs({ limit: 500 })).total
    const deleted = await hooks.cleanupOldJobs(30)
    const oldFinishedElsewhere = deleted - 2
    expect(oldFinishedElsewhere).toBeGreaterThanOrEqual(0)
    expect(await hooks.getJob(old.jobId)).toBeNull()
    expect(await hooks.getJob(oldFailed.jobId)).toBeNull()
    expect(await hooks.getJob(oldRunning.jobId)).not.toBeNull()
    expect(await hooks.getJob(oldPending.jobId)).not.toBeNull()
    expect(await hooks.getJob(recent.jobId)).not.toBeNull()
    expect((await hooks.getJobs({ limit: 500 })).total).toBe(before - deleted)
    const orphanMeta = await jobpost.db.knex.raw('SELECT COUNT(*) AS n FROM post_meta m LEFT JOIN posts p ON p.id = m.post_id WHERE p.id IS NULL')
    expect(Number(orphanMeta[0].n)).toBe(0)
    await expect(hooks.cleanupOldJobs(0)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  })
})
