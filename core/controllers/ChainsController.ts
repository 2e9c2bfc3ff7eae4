import type { Router } from 'express'
import { assertMaySetPrivilegedFields } from '../auth/capabilities.js'
import { z } from 'zod'
import { sendData } from '../http/envelope.js'
import { requireCapability, requireJsonBody } from '../http/middleware.js'
import { parseOrThrow } from '../registry/jobInput.js'
import { chainOptionsSchema, chainStepSchema, MAX_CHAIN_STEPS, type ChainEngine } from '../workflows/chains.js'
import type { Clock } from '../clock.js'
import { JobNotFoundError } from '../errors.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import { CHAIN_JOB_TYPE } from '../workflows/chains.js'
import { describeChain } from '../workflows/chainView.js'
import { visibleJob } from './jobAccess.js'

const chainBodySchema = chainOptionsSchema.omit({ createdBy: true }).extend({
  steps: z.array(chainStepSchema).min(1, 'a chain needs at least one step').max(MAX_CHAIN_STEPS),
})

/**
 * POST /api/v1/jobs/chain (create_jobs): `{ name?, description?, metadata?, source?, steps: [{ type,
 * payload?, name?, priority?, maxAttempts?, timeout? }] }` → 201 with the parent job. The chain and
 * its steps belong to the caller, so users without read_jobs see them like their other jobs.
 */
export function mountChainRoutes(router: Router, options: { chains: ChainEngine; jobs?: RegisterJobs; clock?: Clock }): void {
  const { jobs, clock } = options
  if (jobs && clock) {
    // GET /api/v1/jobs/:jobId/chain: the chain's steps as its detail draws them (core/workflows/chainView.ts).
    router.get('/:jobId/chain', async (req, res) => {
      const parent = await visibleJob(jobs, req)
      if (parent.type !== CHAIN_JOB_TYPE) throw new JobNotFoundError(parent.jobId)
      sendData(res, await describeChain(jobs, parent, clock.now()))
    })
  }
  router.post('/chain', requireCapability('create_jobs'), requireJsonBody, async (req, res) => {
    const { steps, ...rest } = parseOrThrow(chainBodySchema, req.body)
    assertMaySetPrivilegedFields(req.user!, { source: rest.source, priority: Math.max(0, ...steps.map((step) => step.priority ?? 0)) })
    sendData(res, await options.chains.enqueue(steps, { ...rest, createdBy: req.user!.id }), 201)
  })
}
