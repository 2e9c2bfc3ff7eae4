import type { ChainStepView, ChainView, Job } from '../contract.js'
import type { JobRecord } from '../registry/jobRecord.js'
import { toPublicJob } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import { MAX_CHAIN_STEPS, type ChainStep } from './chains.js'
import { templatePaths } from './templates.js'

const SUMMARY_LENGTH = 120

/**
 * A chain as its detail draws it (GET /api/v1/jobs/:jobId/chain): every step of the chain's
 * definition (the parent's data), with its job when one was created, the template links between
 * steps (`{{steps[N].result.path}}` in a payload), the step that ended the chain and the steps
 * that were never created. Read-only; two reads (the parent is given, plus its children).
 */
export async function describeChain(jobs: RegisterJobs, parent: JobRecord, now: number): Promise<ChainView> {
  const steps = stepsOf(parent)
  const children = await jobs.getJobs({ parentJobId: parent.jobId, limit: MAX_CHAIN_STEPS * 2 })
  const byStep = new Map<number, Job>()
  // Newest first: a step retried by hand keeps its latest job.
  for (const child of children.jobs) {
    const index = child.metadata.chainStep
    if (typeof index === 'number' && !byStep.has(index)) byStep.set(index, child)
  }
  const chainMeta = (parent.metadata.chain ?? {}) as { failedStep?: unknown }
  let failedStep = typeof chainMeta.failedStep === 'number' ? chainMeta.failedStep : null
  if (failedStep === null) {
    for (const [index, child] of byStep) if (child.status === 'failed' || child.status === 'cancelled') failedStep = Math.min(failedStep ?? index, index)
  }
  const ended = parent.status === 'failed' || parent.status === 'cancelled' || parent.status === 'completed' || parent.status === 'completed_with_errors'
  const view: ChainStepView[] = steps.map((step, index) => {
    const job = byStep.get(index) ?? null
    return {
      index,
      type: step.type,
      name: step.name ?? job?.name ?? step.type,
      job,
      state: job ? job.status : ended ? 'never_created' : 'waiting',
      durationMs: job ? durationOf(job, now) : null,
      summary: job ? summaryOf(job) : null,
      uses: usesOf(step),
      failed: failedStep === index,
    }
  })
  return { chain: toPublicJob(parent), steps: view, failedStep }
}

function stepsOf(parent: JobRecord): ChainStep[] {
  const steps = (parent.data as { steps?: unknown } | null)?.steps
  return Array.isArray(steps) ? (steps as ChainStep[]) : []
}

function usesOf(step: ChainStep): { step: number; path: string }[] {
  const seen = new Set<string>()
  const uses: { step: number; path: string }[] = []
  try {
    for (const path of templatePaths(step.payload ?? null)) {
      const text = path.keys.map((key) => (typeof key === 'number' ? `[${key}]` : `.${key}`)).join('').slice(1)
      const id = `${path.step}:${text}`
      if (!seen.has(id)) seen.add(id), uses.push({ step: path.step, path: text })
    }
  } catch {
    // A payload the engine refused has no links to draw.
  }
  return uses
}

function durationOf(job: Job, now: number): number | null {
  if (!job.startedAt) return null
  const end = job.completedAt ? Date.parse(job.completedAt) : job.status === 'running' ? now : null
  return end === null ? null : Math.max(0, end - Date.parse(job.startedAt))
}

/** One line: the error of a failed step, else its result (text as is, else compact JSON). */
function summaryOf(job: Job): string | null {
  if (job.errorMessage && (job.status === 'failed' || job.status === 'cancelled' || job.status === 'pending')) return cut(job.errorMessage)
  if (job.result === null || job.result === undefined) return null
  if (typeof job.result === 'string') return cut(job.result)
  try {
    return cut(JSON.stringify(job.result))
  } catch {
    return null
  }
}

function cut(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > SUMMARY_LENGTH ? `${line.slice(0, SUMMARY_LENGTH - 1)}…` : line
}
