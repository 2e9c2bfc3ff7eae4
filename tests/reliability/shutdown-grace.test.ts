import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT_DIR, type DatabaseTarget } from '../../core/config.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { eventually, freshPostgresDatabase, startJobpost } from '../support/harness.js'
import { spawnTs, tempDir, type Child } from './support/processes.js'

/**
 * `npm run worker` (core/worker.ts, a real process) with SHUTDOWN_GRACE_MS=300: on SIGTERM its
 * long job has 300 ms to finish (not the default 10 s), is then aborted and given back to the
 * queue (attempt not counted) with a log line saying so, and the process exits 0.
 */
describe.each(['sqlite', 'postgres'] as const)('SHUTDOWN_GRACE_MS (%s)', (dialect) => {
  const tmp = tempDir('grace')
  let databaseUrl = ''
  let producer: Jobpost | undefined
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  const children: Child[] = []

  beforeAll(async () => {
    let target: DatabaseTarget
    if (dialect === 'postgres') {
      pg = await freshPostgresDatabase('grace')
      if (!pg) return
      databaseUrl = pg.url
      target = { dialect: 'postgres', connectionString: pg.url }
    } else {
      databaseUrl = `sqlite:${path.join(tmp.dir, 'jobs.sqlite')}`
      target = { dialect: 'sqlite', filename: path.join(tmp.dir, 'jobs.sqlite') }
    }
    producer = await startJobpost({ database: target }, { listen: false })
  })
  afterAll(async () => {
    for (const child of children) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL')
    await Promise.all(children.map((child) => child.exited))
    await producer?.close()
    await pg?.drop()
    tmp.remove()
  })

  it('gives a running job back to the queue after the configured grace, logs it, and exits 0', async (ctx) => {
    if (!producer) return ctx.skip()
    const worker = spawnTs(path.join(ROOT_DIR, 'core', 'worker.ts'), {
      DATABASE_URL: databaseUrl,
      ACTIVE_PLUGINS: 'example-job-plugin',
      EXAMPLE_JOB_STEP_MS: '20000',
      SHUTDOWN_GRACE_MS: '300',
      WORKER_POLL_MS: '50',
      LOG_LEVEL: 'info',
    })
    children.push(worker)
    await worker.waitFor(/Jobpost worker started/)
    const job = await producer.pluginHooks('test').enqueueJob({ type: 'example-import', data: { items: 3 } })
    await eventually(async () => (await producer!.jobs.getJob(job.jobId))!.status === 'running', { timeoutMs: 15_000, intervalMs: 20 })
    const signalledAt = Date.now()
    worker.child.kill('SIGTERM')
    expect((await worker.exited).code).toBe(0)
    // 300 ms of grace, not 10 s (the default), plus the time to close.
    expect(Date.now() - signalledAt).toBeLessThan(5000)
    expect(worker.output()).toMatch(/given back to the queue \(attempt not counted\)/)
    expect(worker.output()).toContain(job.jobId)
    expect(await producer.jobs.getJob(job.jobId)).toMatchObject({ status: 'pending', attempts: 0 })
  }, 60_000)
})
