import { createRequire } from 'node:module'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../core/clock.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { UnrecoverableError } from '../../core/errors.js'
import { eventually, startJobpost, userWithRole } from '../support/harness.js'

interface Family {
  name: string
  type: string
  metrics: { labels?: Record<string, string>; value?: string; count?: string; sum?: string; buckets?: Record<string, string> }[]
}
const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[]

describe('metrics', () => {
  const open: Jobpost[] = []
  afterEach(async () => {
    for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
  })
  async function instance(...args: Parameters<typeof startJobpost>) {
    const jobpost = await startJobpost(...args)
    open.push(jobpost)
    return jobpost
  }

  it('serves /metrics in the Prometheus text format with counters and duration histograms by type and status', async () => {
    const jobpost = await instance({ runWorker: true })
    const other = await instance()
    const hooks = jobpost.pluginHooks('p')
    let flakyCalls = 0
    hooks.registerJobProcessor('send-email', async () => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      return { sent: true }
    })
    hooks.registerJobProcessor('broken', () => {
      throw new UnrecoverableError('no')
    })
    hooks.registerJobProcessor('flaky', () => {
      if (++flakyCalls === 1) throw Object.assign(new Error('once'), { retryDelay: 0 })
      return 'ok'
    })
    hooks.registerBatchProcessor('photos', (item) => {
      if (item.id === 2) throw new UnrecoverableError('bad photo')
      return { ok: true }
    })
    const jobs = await Promise.all([
      hooks.enqueueJob({ type: 'send-email' }),
      hooks.enqueueJob({ type: 'send-email' }),
      hooks.enqueueJob({ type: 'broken' }),
      hooks.enqueueJob({ type: 'flaky' }),
      hooks.enqueueBatch({ type: 'photos', items: [{ id: 1 }, { id: 2 }] }),
    ])
    await eventually(async () => {
      const all = await Promise.all(jobs.map((job) => jobpost.jobs.getJob(job.jobId)))
      return all.every((job) => job && ['completed', 'completed_with_errors', 'failed'].includes(job.status))
    }, { timeoutMs: 10_000 })
    await jobpost.pluginHooks('p').createJob({ name: 'waiting', type: 'import' })

    const editor = await userWithRole(jobpost, 'editor')
    const res = await request(jobpost.app).get('/metrics').set('Authorization', `Bearer ${editor.token}`).expect(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    const families = new Map(parsePrometheusTextFormat(res.text).map((family) => [family.name, family]))
    const value = (name: string, labels: Record<string, string>) =>
      Number(families.get(name)?.metrics.find((metric) => Object.entries(labels).every(([k, v]) => metric.labels?.[k] === v))?.value ?? NaN)

    expect(families.get('jobpost_jobs_finished_total')?.type).toBe('COUNTER')
    expect(value('jobpost_jobs_finished_total', { type: 'send-email', status: 'completed' })).toBe(2)
    expect(value('jobpost_jobs_finished_total', { type: 'broken', status: 'failed' })).toBe(1)
    expect(value('jobpost_jobs_finished_total', { type: 'flaky', status: 'completed' })).toBe(1)
    expect(value('jobpost_jobs_finished_total', { type: 'photos', status: 'completed_with_errors' })).toBe(1)
    expect(value('jobpost_job_retries_total', { type: 'flaky' })).toBe(1)
    expect(value('jobpost_jobs_created_total', { type: 'send-email' })).toBe(2)
    expect(value('jobpost_jobs', { status: 'pending' })).toBe(1)
    expect(value('jobpost_jobs', { status: 'completed' })).toBe(3)

    const histogram = families.get('jobpost_job_duration_seconds')!
    expect(histogram.type).toBe('HISTOGRAM')
    // (This parser flattens labelled histograms into one sample; read the labelled series from the text.)
    expect(Object.keys(histogram.metrics[0]!.buckets ?? {})).toContain('+Inf')
    expect(res.text).toContain('jobpost_job_duration_seconds_count{type="send-email",status="completed"} 2\n')
    expect(res.text).toContain('jobpost_job_duration_seconds_bucket{le="+Inf",type="send-email",status="completed"} 2\n')
    expect(res.text).toContain('jobpost_job_duration_seconds_count{type="photos",status="completed_with_errors"} 1\n')
    const sum = Number(/jobpost_job_duration_seconds_sum\{type="send-email",status="completed"\} ([\d.e-]+)/.exec(res.text)?.[1])
    expect(sum).toBeGreaterThanOrEqual(0.02)

    // Another instance in the same process has its own registry.
    const admin = await userWithRole(other, 'administrator')
    const otherText = (await request(other.app).get('/metrics').set('Authorization', `Bearer ${admin.token}`).expect(200)).text
    const otherFamilies = new Map(parsePrometheusTextFormat(otherText).map((family) => [family.name, family]))
    expect(otherFamilies.get('jobpost_jobs_finished_total')?.metrics ?? []).toHaveLength(0)
  })

  it('checks identity on /metrics: 401 without a token, 403 without read_jobs', async () => {
    const jobpost = await instance()
    const subscriber = await userWithRole(jobpost, 'subscriber')
    const anonymous = await request(jobpost.app).get('/metrics').expect(401)
    expect(anonymous.body).toMatchObject({ success: false, error: { code: 'UNAUTHENTICATED' } })
    await request(jobpost.app).get('/metrics').set('Authorization', 'Bearer not-a-token').expect(401)
    const forbidden = await request(jobpost.app).get('/metrics').set('Authorization', `Bearer ${subscriber.token}`).expect(403)
    expect(forbidden.body.error.code).toBe('FORBIDDEN')
    await request(jobpost.app).post('/metrics').expect(401)
  })

  it('adds average processing time and throughput to GET /api/v1/jobs/stats, per user when isolated', async () => {
    const clock = new ManualClock(Date.parse('2026-05-01T12:00:00.000Z'))
    const jobpost = await instance({}, { clock })
    const admin = await userWithRole(jobpost, 'administrator')
    const subscriber = await userWithRole(jobpost, 'subscriber')
    const hooks = jobpost.pluginHooks('p')
    const run = async (durationMs: number, options: { fail?: boolean; createdBy?: number } = {}) => {
      const handle = await hooks.createJob({ name: 'timed', type: options.fail ? 'sync' : 'import', createdBy: options.createdBy })
      await handle.start()
      clock.advance(durationMs)
      if (options.fail) await handle.fail('broken')
      else await handle.complete()
    }
    await run(9000) // finishes 2 h before "now": outside the last hour
    clock.advance(2 * 3600_000 - 9000)
    await run(4000, { createdBy: subscriber.id }) // finished 30 min before now
    clock.advance(30 * 60_000 - 4000 - 30_000)
    await run(2000, { fail: true }) // finished 30 s before now
    clock.advance(28_000)
    const cancelled = await hooks.createJob({ name: 'never ran', type: 'import' })
    await cancelled.cancel()
    await hooks.createJob({ name: 'pending', type: 'import' })

    const all = await request(jobpost.app).get('/api/v1/jobs/stats').set('Authorization', `Bearer ${admin.token}`).expect(200)
    expect(all.body.data).toMatchObject({
      total: 5,
      byStatus: { completed: 2, failed: 1, cancelled: 1, pending: 1 },
      byType: { import: 4, sync: 1 },
      averageProcessingMs: 5000,
      throughput: { lastMinute: 1, lastHour: 2 },
    })
    const own = await request(jobpost.app).get('/api/v1/jobs/stats').set('Authorization', `Bearer ${subscriber.token}`).expect(200)
    expect(own.body.data).toMatchObject({ total: 1, averageProcessingMs: 4000, throughput: { lastMinute: 0, lastHour: 1 } })
    clock.advance(2 * 24 * 3600_000)
    const later = await jobpost.jobs.stats()
    expect(later).toMatchObject({ averageProcessingMs: null, throughput: { lastMinute: 0, lastHour: 0 } })
  })
})
