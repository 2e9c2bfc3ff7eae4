import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT_DIR } from '../../core/config.js'
import { eventually } from '../support/harness.js'
import { spawnTs } from './support/processes.js'
import { sharedDatabase } from './support/sharedDatabase.js'

/**
 * `npm run worker` (core/worker.ts, a real process) with SHUTDOWN_GRACE_MS=300: on SIGTERM its
 * long job has 300 ms to finish (not the default 10 s), is then aborted and given back to the
 * queue (attempt not counted) with a log line saying so, and the process exits 0.
 */
describe.each(['sqlite', 'postgres'] as const)('SHUTDOWN_GRACE_MS (%s)', (dialect) => {
  const shared = sharedDatabase(dialect, 'grace')

  it('gives a running job back to the queue after the configured grace, logs it, and exits 0', async (ctx) => {
    if (!shared.producer) return ctx.skip()
    const worker = spawnTs(path.join(ROOT_DIR, 'core', 'worker.ts'), {
      DATABASE_URL: shared.databaseUrl,
      ACTIVE_PLUGINS: 'example-job-plugin',
      EXAMPLE_JOB_STEP_MS: '20000',
      SHUTDOWN_GRACE_MS: '300',
      WORKER_POLL_MS: '50',
      LOG_LEVEL: 'info',
    })
    shared.children.push(worker)
    await worker.waitFor(/Jobpost worker started/)
    const job = await shared.producer.pluginHooks('test').enqueueJob({ type: 'example-import', data: { items: 3 } })
    await eventually(async () => (await shared.producer!.jobs.getJob(job.jobId))!.status === 'running', { timeoutMs: 15_000, intervalMs: 20 })
    const signalledAt = Date.now()
    worker.child.kill('SIGTERM')
    expect((await worker.exited).code).toBe(0)
    // 300 ms of grace, not 10 s (the default), plus the time to close.
    expect(Date.now() - signalledAt).toBeLessThan(5000)
    expect(worker.output()).toMatch(/given back to the queue \(attempt not counted\)/)
    expect(worker.output()).toContain(job.jobId)
    expect(await shared.producer.jobs.getJob(job.jobId)).toMatchObject({ status: 'pending', attempts: 0 })
  }, 60_000)
})
