import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChainView, Job } from '../core/contract.js'
import type { Jobpost } from '../core/createJobpost.js'
import { UnrecoverableError } from '../core/errors.js'
import { eventually, startJobpost, userWithRole, type TestUser } from './support/harness.js'

/** GET /api/v1/jobs/:jobId/chain: what the admin draws for a chain (issue 16). */
describe('a chain drawn as a chain', () => {
  let jobpost: Jobpost & { url: string }
  let owner: TestUser
  let stranger: TestUser

  beforeAll(async () => {
    jobpost = await startJobpost({ runWorker: true })
    owner = await userWithRole(jobpost, 'subscriber')
    stranger = await userWithRole(jobpost, 'subscriber')
    const hooks = jobpost.pluginHooks('chain-view')
    hooks.registerJobProcessor('cv-fetch', () => ({ content: 'The quick brown fox', words: 4 }))
    hooks.registerJobProcessor('cv-summarize', () => {
      throw new UnrecoverableError('the summarizer is out of credit')
    })
    hooks.registerJobProcessor('cv-speak', () => ({ audio: 'never.mp3' }))
  })
  afterAll(async () => {
    await jobpost?.close({ graceMs: 100 })
  })

  const get = (user: TestUser, jobId: string) =>
    request(jobpost.app).get(`/api/v1/jobs/${jobId}/chain`).set('Authorization', `Bearer ${user.token}`)

  it('shows each step’s status, duration and summary, the template links, the failed step and the steps never created', async () => {
    const created = await request(jobpost.app)
      .post('/api/v1/jobs/chain')
      .set('Authorization', `Bearer ${owner.token}`)
      .send({
        name: 'Article to audio',
        steps: [
          { type: 'cv-fetch', name: 'Fetch', payload: { url: 'https://example.com' } },
          { type: 'cv-summarize', name: 'Summarize', payload: { text: '{{steps[0].result.content}}', n: '{{steps[0].result.words}}' } },
          { type: 'cv-speak', name: 'Speak', payload: { text: '{{steps[1].result.summary}}', title: '{{steps[0].result.content}}' } },
        ],
      })
      .expect(201)
    const chainId = (created.body.data as Job).jobId
    await eventually(async () => (await jobpost.jobs.getJob(chainId))?.status === 'failed', { timeoutMs: 10_000 })

    const view = (await get(owner, chainId).expect(200)).body.data as ChainView
    expect(view.chain).toMatchObject({ jobId: chainId, status: 'failed' })
    expect(view.failedStep).toBe(1)
    expect(view.steps.map((step) => [step.index, step.name, step.state, step.failed])).toEqual([
      [0, 'Fetch', 'completed', false],
      [1, 'Summarize', 'failed', true],
      [2, 'Speak', 'never_created', false],
    ])
    const [fetch, summarize, speak] = view.steps
    expect(fetch!.summary).toBe('{"content":"The quick brown fox","words":4}')
    expect(fetch!.durationMs).toBeGreaterThanOrEqual(0)
    expect(fetch!.job).toMatchObject({ type: 'cv-fetch', parentJobId: chainId })
    expect(summarize!.summary).toContain('the summarizer is out of credit')
    expect(summarize!.uses).toEqual([
      { step: 0, path: 'result.content' },
      { step: 0, path: 'result.words' },
    ])
    expect(speak).toMatchObject({ job: null, durationMs: null, summary: null })
    expect(speak!.uses).toEqual([
      { step: 1, path: 'result.summary' },
      { step: 0, path: 'result.content' },
    ])

    // Another user's chain is not found; a job that is not a chain neither; a bad id is 400.
    await get(stranger, chainId).expect(404)
    await get(owner, fetch!.job!.jobId).expect(404)
    await get(owner, 'nope').expect(400)
  })
})
