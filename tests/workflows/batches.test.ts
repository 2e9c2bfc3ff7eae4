import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { UnrecoverableError } from '../../core/errors.js'
import { BATCH_ITEM_POST_TYPE } from '../../core/workflows/batches.js'
import { eventually, startJobpost, userWithRole } from '../support/harness.js'

/** RFC 4180 reader for the round-trip check (quoted cells, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++
      else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') row.push(cell), (cell = '')
    else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell), rows.push(row), (row = []), (cell = ''), i++
    } else cell += c
  }
  if (cell || row.length) row.push(cell), rows.push(row)
  return rows
}
/** Undo the formula guard: a leading ' before = + - @ TAB CR. */
const unguard = (cell: string) => (/^'[=+\-@\t\r]/.test(cell) ? cell.slice(1) : cell)

describe('batches', () => {
  let jobpost: Jobpost | undefined
  afterEach(async () => {
    await jobpost?.close({ graceMs: 100 })
    jobpost = undefined
  })

  it('runs 50 items with item concurrency and retries, ends completed_with_errors, and exports a round-tripping CSV and JSON', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const flaky = new Set([3, 13, 23, 33, 43])
    const broken = new Set([7, 17])
    const calls = new Map<number, number>()
    let inFlight = 0
    let maxInFlight = 0
    jobpost.pluginHooks('alt-text').registerBatchProcessor(
      'generate-alt',
      async (item, { attempt }) => {
        const id = item.id as number
        calls.set(id, (calls.get(id) ?? 0) + 1)
        expect(attempt).toBe(calls.get(id))
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        try {
          await new Promise((resolve) => setTimeout(resolve, 2))
          if (broken.has(id)) throw new Error(id === 7 ? '=HYPERLINK("http://evil"), "quoted"\nsecond line' : `image ${id} not accessible`)
          if (flaky.has(id) && calls.get(id)! <= 2) throw new Error(`network hiccup ${calls.get(id)}`)
          return { alt: `Alt text for "${item.filename}", with comma`, chars: id * 3 }
        } finally {
          inFlight--
        }
      },
      { itemConcurrency: 4, itemMaxAttempts: 3, itemBackoff: { type: 'fixed', delay: 1 } },
    )
    const items = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, filename: i === 0 ? '+cmd|calc' : `photo-${i + 1}.jpg` }))
    const created = await request(jobpost.app)
      .post('/api/v1/jobs')
      .set('Authorization', `Bearer ${admin.token}`)
      .send({ name: 'Alt text for 50 photos', type: 'generate-alt', data: { items } })
      .expect(201)
    const jobId = created.body.data.jobId as string

    const job = (await eventually(async () => {
      const current = await jobpost!.jobs.getJob(jobId)
      return current && ['completed', 'completed_with_errors', 'failed'].includes(current.status) ? current : null
    }, { timeoutMs: 20_000 }))!
    expect(job.status).toBe('completed_with_errors')
    expect(job.progress).toBe(100)
    expect(job.result).toEqual({ total: 50, completed: 48, failed: 2, pending: 0 })
    expect(job.metadata).toMatchObject({ batch: { total: 50, completed: 48, failed: 2, pending: 0 } })
    expect(maxInFlight).toBe(4)

    const exported = await request(jobpost.app)
      .get(`/api/v1/jobs/${jobId}/export?format=json`)
      .set('Authorization', `Bearer ${admin.token}`)
      .expect(200)
      .expect('Content-Type', /application\/json/)
      .expect('Content-Disposition', `attachment; filename="job-${jobId}.json"`)
    const json = JSON.parse(exported.text) as { job: { jobId: string }; items: any[] }
    expect(json.job.jobId).toBe(jobId)
    expect(json.items).toHaveLength(50)
    for (const item of json.items) {
      const id = item.id as number
      expect(item.index).toBe(id - 1)
      if (broken.has(id)) {
        expect(item).toMatchObject({ status: 'failed', attempts: 3, result: null })
        expect(item.error).toContain(id === 7 ? '=HYPERLINK' : `image ${id} not accessible`)
      } else {
        expect(item).toMatchObject({ status: 'completed', attempts: flaky.has(id) ? 3 : 1, error: null, result: { chars: id * 3 } })
      }
      expect(calls.get(id)).toBe(item.attempts)
    }

    const csv = await request(jobpost.app)
      .get(`/api/v1/jobs/${jobId}/export?format=csv`)
      .set('Authorization', `Bearer ${admin.token}`)
      .expect(200)
      .expect('Content-Type', /text\/csv/)
    // The formula in item 7's error is neutralised in the file.
    expect(csv.text).toContain(`"'=HYPERLINK(""http://evil""), ""quoted""\nsecond line"`)
    const [header, ...rows] = parseCsv(csv.text)
    expect(header).toEqual(['index', 'id', 'status', 'attempts', 'error', 'result', 'startedAt', 'finishedAt'])
    const fromCsv = rows.map((row) => {
      const [index, id, status, attempts, error, result, startedAt, finishedAt] = row.map(unguard)
      return {
        index: Number(index),
        id: Number(id),
        status,
        attempts: Number(attempts),
        error: error || null,
        result: result ? JSON.parse(result!) : null,
        startedAt: startedAt || null,
        finishedAt: finishedAt || null,
      }
    })
    expect(fromCsv).toEqual(json.items)
  })

  it('applies pause, resume and cancel to items', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const started: number[] = []
    const release = new Map<number, () => void>()
    const aborted: number[] = []
    jobpost.pluginHooks('p').registerBatchProcessor(
      'slow-items',
      (item, { signal }) =>
        new Promise((resolve, reject) => {
          const id = item.id as number
          started.push(id)
          release.set(id, () => resolve({ done: id }))
          signal.addEventListener('abort', () => {
            aborted.push(id)
            reject(new Error('aborted'))
          })
        }),
      { itemConcurrency: 2 },
    )
    const job = await jobpost.pluginHooks('p').enqueueBatch({ type: 'slow-items', items: Array.from({ length: 10 }, (_, i) => ({ id: i + 1 })) })
    const api = (path: string) => request(jobpost!.app).post(`/api/v1/jobs/${job.jobId}/${path}`).set('Authorization', `Bearer ${admin.token}`)
    await eventually(() => started.length === 2)

    // Pause aborts the attempt (paused means no code of the job runs): the items under way are
    // aborted and left for the next attempt, which runs once the batch is resumed.
    await api('pause').expect(200)
    await eventually(() => aborted.length === 2)
    expect(aborted.sort()).toEqual([1, 2])
    await jobpost.runtime.whenIdle()
    expect(started).toEqual([1, 2])
    expect((await jobpost.jobs.getJob(job.jobId))!).toMatchObject({ status: 'paused', attempts: 0 })

    await api('resume').expect(200)
    await eventually(() => started.length === 4)
    expect(started).toEqual([1, 2, 1, 2])
    release.get(1)!()
    release.get(2)!()
    await eventually(() => started.length === 6)
    expect(started).toEqual([1, 2, 1, 2, 3, 4])
    aborted.length = 0

    await api('cancel').expect(200)
    await eventually(() => aborted.length === 2)
    expect(aborted.sort()).toEqual([3, 4])
    const items = (await eventually(async () => {
      const list = await jobpost!.workflows.batches.listItems(job.jobId)
      return list.filter((item) => item.status === 'failed').length === 2 ? list : null
    }))!
    expect(items.map((item) => item.status)).toEqual(['completed', 'completed', 'failed', 'failed', ...Array(6).fill('pending')])
    expect(items[2]!.error).toBe('Cancelled while processing.')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(started).toHaveLength(6)
    expect((await jobpost.jobs.getJob(job.jobId))!.status).toBe('cancelled')
  })

  it('a retry of a finished batch runs only its failed items again; deleting it deletes its items', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const admin = await userWithRole(jobpost, 'administrator')
    const runs: string[] = []
    let firstRun = true
    jobpost.pluginHooks('p').registerBatchProcessor('once-broken', (item) => {
      runs.push(String(item.id))
      if (item.id === 'b' && firstRun) throw new UnrecoverableError('broken today')
      return { ok: item.id }
    })
    const job = await jobpost.pluginHooks('p').enqueueBatch({ type: 'once-broken', items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] })
    await eventually(async () => (await jobpost!.jobs.getJob(job.jobId))!.status === 'completed_with_errors')
    expect(runs.sort()).toEqual(['a', 'b', 'c'])
    firstRun = false
    await request(jobpost.app).post(`/api/v1/jobs/${job.jobId}/retry`).set('Authorization', `Bearer ${admin.token}`).expect(200)
    const done = await eventually(async () => {
      const current = await jobpost!.jobs.getJob(job.jobId)
      return current!.status === 'completed' ? current : null
    })
    expect(done!.result).toEqual({ total: 3, completed: 3, failed: 0, pending: 0 })
    expect(runs.sort()).toEqual(['a', 'b', 'b', 'c'])

    await request(jobpost.app).delete(`/api/v1/jobs/${job.jobId}`).set('Authorization', `Bearer ${admin.token}`).expect(200)
    await eventually(async () => (await jobpost!.store.findPostIds({ postType: BATCH_ITEM_POST_TYPE, limit: 10 })).length === 0)
  })

  it('rejects bad items and options, and fails a batch whose every item failed', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const hooks = jobpost.pluginHooks('p')
    hooks.registerBatchProcessor('always-fails', () => {
      throw new UnrecoverableError('nope')
    })
    expect(() => hooks.registerBatchProcessor('x', () => null, { itemConcurrency: 0 })).toThrow(/itemConcurrency/)
    await expect(hooks.enqueueBatch({ type: 'always-fails', items: [{ name: 'no id' }] as any })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    const job = await hooks.enqueueJob({ type: 'always-fails', data: { items: 'not a list' } })
    const failed = await eventually(async () => {
      const current = await jobpost!.jobs.getJob(job.jobId)
      return current!.status === 'failed' ? current : null
    })
    expect(failed!.errorMessage).toMatch(/Invalid batch items/)
    const all = await hooks.enqueueBatch({ type: 'always-fails', items: [{ id: 1 }, { id: 2 }] })
    const allFailed = await eventually(async () => {
      const current = await jobpost!.jobs.getJob(all.jobId)
      return current!.status === 'failed' ? current : null
    })
    expect(allFailed!.errorMessage).toBe('All 2 items failed.')
  })
})
