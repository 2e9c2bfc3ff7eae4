import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { UnrecoverableError } from '../../core/errors.js'
import { resolveTemplates } from '../../core/workflows/templates.js'
import { eventually, startJobpost, userWithRole } from '../support/harness.js'

describe('chains', () => {
  let jobpost: Jobpost | undefined
  afterEach(async () => {
    await jobpost?.close({ graceMs: 100 })
    jobpost = undefined
  })

  async function finished(jobId: string) {
    return (await eventually(async () => {
      const job = await jobpost!.jobs.getJob(jobId)
      return job && ['completed', 'failed', 'cancelled'].includes(job.status) ? job : null
    }, { timeoutMs: 10_000 }))!
  }

  it('runs three steps in order, passing results through templates; the parent shows its children', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const seen: Record<string, unknown> = {}
    const hooks = jobpost.pluginHooks('voxcraft')
    hooks.registerJobProcessor('transcribe', (job) => {
      seen.transcribe = job.data
      return { content: 'hello "world", again', words: 3 }
    })
    hooks.registerJobProcessor('translate', (job) => {
      seen.translate = job.data
      return { content: `bonjour (${(job.data as { text: string }).text})` }
    })
    hooks.registerJobProcessor('voice', (job) => {
      seen.voice = job.data
      return { audio: 'voice.mp3' }
    })
    const user = await userWithRole(jobpost, 'subscriber')
    const other = await userWithRole(jobpost, 'subscriber')
    const res = await request(jobpost.app)
      .post('/api/v1/jobs/chain')
      .set('Authorization', `Bearer ${user.token}`)
      .send({
        name: 'Voice over',
        steps: [
          { type: 'transcribe', payload: { file: 'in.wav' } },
          { type: 'translate', payload: { text: '{{steps[0].result.content}}', lang: 'fr' } },
          { type: 'voice', payload: { script: '{{ steps[1].result.content }}', words: '{{steps[0].result.words}}', label: 'words={{steps[0].result.words}}', source: '{{steps[0].jobId}}' } },
        ],
      })
      .expect(201)
    expect(res.body.data).toMatchObject({ type: 'chain', status: 'running', name: 'Voice over', createdBy: user.id })
    const parentId = res.body.data.jobId as string

    const parent = await finished(parentId)
    expect(parent).toMatchObject({ status: 'completed', progress: 100, metadata: { chain: { total: 3, completed: 3 } } })
    expect((parent.result as { result: unknown }).result).toEqual({ audio: 'voice.mp3' })

    const children = await request(jobpost.app).get(`/api/v1/jobs?parentJobId=${parentId}`).set('Authorization', `Bearer ${user.token}`).expect(200)
    expect(children.body.meta.total).toBe(3)
    const byType = Object.fromEntries(children.body.data.map((job: { type: string }) => [job.type, job]))
    expect(Object.keys(byType).sort()).toEqual(['transcribe', 'translate', 'voice'])
    for (const child of children.body.data) expect(child).toMatchObject({ parentJobId: parentId, status: 'completed', createdBy: user.id })
    expect(Date.parse(byType.translate.startedAt)).toBeGreaterThanOrEqual(Date.parse(byType.transcribe.completedAt))
    expect(Date.parse(byType.voice.startedAt)).toBeGreaterThanOrEqual(Date.parse(byType.translate.completedAt))

    expect(seen.transcribe).toEqual({ file: 'in.wav' })
    expect(seen.translate).toEqual({ text: 'hello "world", again', lang: 'fr' })
    expect(seen.voice).toEqual({ script: 'bonjour (hello "world", again)', words: 3, label: 'words=3', source: byType.transcribe.jobId })

    // Another subscriber sees neither the chain nor its steps.
    await request(jobpost.app).get(`/api/v1/jobs/${parentId}`).set('Authorization', `Bearer ${other.token}`).expect(404)
    const foreign = await request(jobpost.app).get(`/api/v1/jobs?parentJobId=${parentId}`).set('Authorization', `Bearer ${other.token}`).expect(200)
    expect(foreign.body.meta.total).toBe(0)
    // The export lists the steps as items.
    const exported = await request(jobpost.app).get(`/api/v1/jobs/${parentId}/export?format=json`).set('Authorization', `Bearer ${user.token}`).expect(200)
    expect(JSON.parse(exported.text).items.map((item: { status: string }) => item.status)).toEqual(['completed', 'completed', 'completed'])
  })

  it('stops on a failed step: the chain fails and the remaining steps never run', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const ran: string[] = []
    const hooks = jobpost.pluginHooks('voxcraft')
    hooks.registerJobProcessor('step-a', () => (ran.push('a'), { content: 'ok' }))
    hooks.registerJobProcessor('step-b', () => {
      ran.push('b')
      throw new UnrecoverableError('the translation service refused')
    })
    hooks.registerJobProcessor('step-c', () => (ran.push('c'), { content: 'never' }))
    const parent = await hooks.enqueueChain([
      { type: 'step-a', payload: {} },
      { type: 'step-b', payload: { text: '{{steps[0].result.content}}' } },
      { type: 'step-c', payload: { text: '{{steps[1].result.content}}' } },
    ])
    const done = await finished(parent.jobId)
    expect(done.status).toBe('failed')
    expect(done.errorMessage).toBe('Step 2 of 3 (step-b) failed: the translation service refused. The remaining 1 step(s) were cancelled and never ran.')
    expect(done.metadata).toMatchObject({ chain: { total: 3, completed: 1, failedStep: 1, cancelledSteps: [2] } })
    const children = await jobpost.jobs.getJobs({ parentJobId: parent.jobId })
    expect(children.jobs.map((job) => [job.type, job.status]).sort()).toEqual([['step-a', 'completed'], ['step-b', 'failed']])
    // Give a (wrong) third step every chance to appear.
    await jobpost.workflows.chains.reconcile(parent.jobId)
    await jobpost.workflows.chains.sweep()
    expect(ran).toEqual(['a', 'b'])
    expect((await jobpost.jobs.getJobs({ parentJobId: parent.jobId })).total).toBe(2)
  })

  it('fails the chain when a template does not resolve, and cancelling the chain cancels its running step', async () => {
    jobpost = await startJobpost({ runWorker: true })
    const hooks = jobpost.pluginHooks('voxcraft')
    hooks.registerJobProcessor('produce', () => ({ other: 1 }))
    hooks.registerJobProcessor('consume', () => 'unused')
    const broken = await hooks.enqueueChain([{ type: 'produce' }, { type: 'consume', payload: { x: '{{steps[0].result.content}}' } }])
    const failed = await finished(broken.jobId)
    expect(failed.status).toBe('failed')
    expect(failed.errorMessage).toMatch(/Step 2 of 2 \(consume\) could not start: Template \{\{steps\[0\]\.result\.content\}\} did not resolve/)

    let aborted = false
    hooks.registerJobProcessor('wait-forever', (_job, { signal }) =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(new Error('aborted'))))),
    )
    const long = await hooks.enqueueChain([{ type: 'wait-forever' }, { type: 'produce' }])
    const step = await eventually(async () => (await jobpost!.jobs.getJobs({ parentJobId: long.jobId, status: 'running' })).jobs[0])
    const admin = await userWithRole(jobpost, 'administrator')
    await request(jobpost.app).post(`/api/v1/jobs/${long.jobId}/cancel`).set('Authorization', `Bearer ${admin.token}`).expect(200)
    await eventually(async () => (await jobpost!.jobs.getJob(step.jobId))!.status === 'cancelled')
    await eventually(() => aborted)
    expect((await jobpost.jobs.getJobs({ parentJobId: long.jobId })).total).toBe(1)
  })

  it('rejects invalid chains with 400 and anonymous callers with 401', async () => {
    jobpost = await startJobpost()
    const user = await userWithRole(jobpost, 'subscriber')
    const post = (body: unknown) => request(jobpost!.app).post('/api/v1/jobs/chain').set('Authorization', `Bearer ${user.token}`).send(body as object)
    for (const body of [
      { steps: [] },
      { steps: [{ type: 'a', payload: { x: '{{steps[1].result.y}}' } }, { type: 'b' }] },
      { steps: [{ type: 'a', payload: { x: '{{steps[0].result}}' } }] },
      { steps: [{ type: 'a', payload: { x: '{{process.exit()}}' } }] },
      { steps: [{ type: 'a', payload: { x: '{{steps[0].result.__proto__}}' } }, { type: 'b' }] },
      { steps: [{ type: 'a', unknown: true }] },
      { steps: [{ type: 'a' }], createdBy: 1 },
      { steps: [{ type: 'bad type!' }] },
    ]) {
      const res = await post(body).expect(400)
      expect(res.body).toMatchObject({ success: false, error: { code: 'VALIDATION_FAILED' } })
    }
    await request(jobpost.app).post('/api/v1/jobs/chain').send({ steps: [{ type: 'a' }] }).expect(401)
    const openapi = await request(jobpost.app).get('/api/v1/openapi.json').expect(200)
    expect(Object.keys(openapi.body.paths)).toEqual(expect.arrayContaining(['/jobs/chain', '/schedules', '/schedules/{name}']))
    expect(openapi.body.paths['/jobs/chain'].post.requestBody.content['application/json'].schema.properties.steps.maxItems).toBe(50)
    expect((await jobpost.jobs.getJobs()).total).toBe(0)
  })

  it('resolves templates by plain path lookup only', () => {
    const steps = [{ jobId: 'j0', result: { content: 'x', list: [{ n: 1 }], nested: { a: null } } }]
    expect(resolveTemplates({ a: '{{steps[0].result.list[0].n}}', b: ['{{steps[0].result.nested}}'], c: 'n={{steps[0].result.list}}' }, steps)).toEqual({
      a: 1,
      b: [{ a: null }],
      c: 'n=[{"n":1}]',
    })
    expect(() => resolveTemplates('{{steps[0].result.constructor}}', steps)).toThrow(/forbidden/)
    expect(() => resolveTemplates('{{steps[0].result.toString}}', steps)).toThrow(/did not resolve/)
  })
})
