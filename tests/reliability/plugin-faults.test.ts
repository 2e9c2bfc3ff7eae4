import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { eventually } from '../support/harness.js'
import request from 'supertest'
import { spawnTs, spawnWorker } from './support/processes.js'
import { sharedDatabase } from './support/sharedDatabase.js'

const LEASE_MS = 600

/**
 * Plugin code as a fault boundary, in real worker processes (tests/reliability/fixtures/worker.ts):
 * any thrown value becomes a readable error; faults plugin code leaves behind (an unhandled
 * rejection, an exception thrown from a timer) are logged with the plugin's name and the process
 * goes on; a job whose attempts keep killing their worker (SIGKILL) is failed once its attempts
 * are used, not retried forever; a tracked job whose process dies ends failed, saying so.
 */
describe.each(['sqlite', 'postgres'] as const)('plugin faults and dying processes (%s)', (dialect) => {
  const shared = sharedDatabase(dialect, 'faults', { workerLeaseMs: LEASE_MS })
  const eventLog = path.join(shared.tmp.dir, 'events.log')

  const spawn = async (env: Record<string, string> = {}) => {
    const child = await spawnWorker({ databaseUrl: shared.databaseUrl, eventLog, leaseMs: LEASE_MS, env: { LOG_LEVEL: 'info', ...env } })
    shared.children.push(child)
    return child
  }

  it('turns any thrown value into a readable error, and contains faults plugin code leaves behind', async (ctx) => {
    if (!shared.producer) return ctx.skip()
    const jobs = shared.producer.jobs
    const hooks = shared.producer.pluginHooks('test')
    const faults = ['null', 'undefined', 'string', 'number', 'hostile'] as const
    const thrown = await hooks.enqueueJobs(faults.map((fault) => ({ type: 'faulty', data: { fault }, maxAttempts: 1 })))
    const worker = await spawn()
    // Whatever happens below, this worker must not outlive the test (it would take the next one's jobs).
    ctx.onTestFinished(async () => {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL')
      await worker.exited
    })
    const finals = await eventually(
      async () => {
        const records = await Promise.all(thrown.map((job) => jobs.getJob(job.jobId)))
        return records.every((record) => record!.status === 'failed') ? records : null
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    )
    expect(finals!.map((job) => job!.errorMessage)).toEqual([
      'The plugin threw null.',
      'The plugin threw undefined.',
      'a plain string',
      'The plugin threw number 42.',
      expect.stringMatching(/^The plugin threw /),
    ])

    const stray = await hooks.enqueueJobs([
      { type: 'faulty', data: { fault: 'stray-rejection' } },
      { type: 'faulty', data: { fault: 'stray-exception' } },
    ])
    await worker.waitFor(/Plugin \\"faulty-plugin\\" raised an unhandled rejection \(contained\): a rejection nobody handles/)
    await worker.waitFor(/Plugin \\"faulty-plugin\\" raised an uncaught exception \(contained\): an exception thrown from a timer/)
    // The faults fire from timers after the attempts returned; their completions land too.
    await eventually(async () => (await Promise.all(stray.map((job) => jobs.getJob(job.jobId)))).every((job) => job!.status === 'completed'), {
      timeoutMs: 10_000,
    })
    // Still alive, still working.
    const after = await hooks.enqueueJob({ type: 'fixture', data: { mode: 'fast' } })
    await eventually(async () => (await jobs.getJob(after.jobId))!.status === 'completed', { timeoutMs: 10_000 })
    expect(worker.child.exitCode).toBeNull()
    worker.child.kill('SIGTERM')
    expect((await worker.exited).code).toBe(0)
  }, 60_000)

  it('a server (no runtime) whose plugin leaves faults behind at load and at init logs them with its name and keeps serving', async (ctx) => {
    if (!shared.producer) return ctx.skip()
    const server = spawnTs(path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures', 'server.ts'), {
      DATABASE_URL: shared.databaseUrl,
      ACTIVE_PLUGINS: 'leaves-faults',
    })
    shared.children.push(server)
    const [, url] = await server.waitFor(/LISTENING (http:\/\/\S+)/)
    await server.waitFor(/Plugin \\"leaves-faults\\" raised an uncaught exception \(contained\): thrown from a timer set at load/)
    await server.waitFor(/Plugin \\"leaves-faults\\" raised an unhandled rejection \(contained\): rejected after init/)
    await request(url!).get('/api/v1/openapi.json').expect(200)
    expect(server.child.exitCode).toBeNull()
    server.child.kill('SIGTERM')
    expect((await server.exited).code).toBe(0)
  }, 60_000)

  it('fails a job whose attempts keep killing their worker once its attempts are used', async (ctx) => {
    if (!shared.producer) return ctx.skip()
    const job = await shared.producer.pluginHooks('test').enqueueJob({ type: 'fixture', data: { mode: 'kill-self' }, maxAttempts: 2 })
    const exits: (NodeJS.Signals | null)[] = []
    // Each worker recovers what the one before it left (after the lease), runs it, and dies.
    for (let round = 0; round < 4; round++) {
      const record = await shared.producer.jobs.getJobRecord(job.jobId)
      if (record!.status === 'failed') break
      const worker = await spawn()
      const outcome = await Promise.race([
        worker.exited,
        eventually(async () => (await shared.producer!.jobs.getJob(job.jobId))!.status === 'failed', { timeoutMs: 15_000, intervalMs: 50 }).then(() => null),
      ])
      if (outcome) exits.push(outcome.signal)
      else {
        worker.child.kill('SIGTERM')
        await worker.exited
      }
    }
    expect(exits).toEqual(['SIGKILL', 'SIGKILL'])
    const failed = await shared.producer.jobs.getJob(job.jobId)
    expect(failed).toMatchObject({ status: 'failed', attempts: 2 })
    expect(failed!.errorMessage).toMatch(/lease expired.*no attempts left \(2\)/)
  }, 90_000)

  it('fails a tracked job, saying why, when the process driving it dies', async (ctx) => {
    if (!shared.producer) return ctx.skip()
    const owner = await spawn({ TRACKED_JOB: '1' })
    const [, jobId] = await owner.waitFor(/TRACKED (\S+)/)
    const running = await shared.producer.jobs.getJobRecord(jobId!)
    expect(running).toMatchObject({ status: 'running', progress: 10 })
    expect(running!.lockedUntil).not.toBeNull()
    // While its process lives, the lease is renewed: nothing to recover.
    await new Promise((resolve) => setTimeout(resolve, LEASE_MS * 2))
    expect(await shared.producer.runtime.recover()).toBe(0)
    owner.child.kill('SIGKILL')
    await owner.exited
    const failed = await eventually(
      async () => {
        await shared.producer!.runtime.recover()
        const job = await shared.producer!.jobs.getJob(jobId!)
        return job!.status === 'failed' ? job : null
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    )
    expect(failed!.errorMessage).toMatch(/process driving this job stopped/)
  }, 60_000)
})
