import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../../core/clock.js'
import type { DatabaseTarget } from '../../core/config.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { CHAIN_JOB_TYPE } from '../../core/workflows/chains.js'
import { Scheduler, type ScheduleJobData } from '../../core/workflows/schedules.js'
import type { PostStore } from '../../core/store/PostStore.js'
import { eventually, freshPostgresDatabase, startJobpost } from '../support/harness.js'
import { spawnWorker, tempDir, type Child } from '../reliability/support/processes.js'

/**
 * Schedules and chains move with single conditional writes (issue 12): re-registering a schedule
 * while another process fires it never enqueues that run twice; a chain's cursor moves in the
 * transaction that creates its next step, so concurrent reconcilers create each step once and an
 * interrupted chain (its creator gone, or the worker running a step SIGKILLed) resumes.
 */
describe.each(['sqlite', 'postgres'] as const)('atomic schedules and chains (%s)', (dialect) => {
  const tmp = tempDir('atomic')
  let database: DatabaseTarget = { dialect: 'sqlite', filename: path.join(tmp.dir, 'jobs.sqlite') }
  let databaseUrl = `sqlite:${path.join(tmp.dir, 'jobs.sqlite')}`
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let skip = false
  const open: Jobpost[] = []
  const children: Child[] = []

  beforeAll(async () => {
    if (dialect === 'postgres') {
      pg = await freshPostgresDatabase('atomic')
      if (!pg) skip = true
      else {
        database = { dialect: 'postgres', connectionString: pg.url }
        databaseUrl = pg.url
      }
    }
  })
  afterEach(async () => {
    for (const jobpost of open.splice(0)) await jobpost.close({ graceMs: 100 })
  })
  afterAll(async () => {
    for (const child of children) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL')
    await Promise.all(children.map((child) => child.exited))
    await pg?.drop()
    tmp.remove()
  })

  async function host(options: { clock?: ManualClock } = {}) {
    const jobpost = await startJobpost({ database, workerPollMs: 50 }, { listen: false, clock: options.clock })
    open.push(jobpost)
    return jobpost
  }

  it('re-registering a schedule while another process fires its run enqueues that run once', async (ctx) => {
    if (skip) return ctx.skip()
    const clock = new ManualClock(Date.parse('2026-06-01T10:00:30.000Z'))
    const jobpost = await host({ clock })
    const fired: string[] = []
    const enqueue = async (_data: ScheduleJobData, context: { scheduledFor: string }) => {
      fired.push(context.scheduledFor)
      return `job-${fired.length}`
    }
    const name = `race-${dialect}-${Date.now()}`
    const input = { name, schedule: '* * * * *', jobData: { type: 'noop' } }
    const ticker = new Scheduler({ store: jobpost.store, clock, logger: jobpost.logger, enqueue })
    const first = await ticker.schedule(input)
    expect(first.nextRunAt).toBe('2026-06-01T10:01:00.000Z')
    clock.advance(40_000) // the run is due

    // Another process registers the same schedule at its start: it reads the schedule, then the
    // ticker fires the due run, then it writes. (The store is the real one; only the moment of
    // the other process's tick is chosen.)
    let raced = false
    const racing = new Proxy(jobpost.store, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver)
        if (key !== 'getPostBySlug' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value
        return async (...args: unknown[]) => {
          const post = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
          if (!raced) {
            raced = true
            expect(await ticker.tick()).toBe(1)
          }
          return post
        }
      },
    }) as PostStore
    const registering = new Scheduler({ store: racing, clock, logger: jobpost.logger, enqueue })
    const after = await registering.schedule(input)
    expect(raced).toBe(true)
    expect(after.nextRunAt).toBe('2026-06-01T10:02:00.000Z')
    expect(await ticker.tick()).toBe(0)
    expect(await registering.tick()).toBe(0)
    expect(fired).toEqual(['2026-06-01T10:01:00.000Z'])

    // A changed pattern moves the next run only from the value it read.
    const changed = await registering.schedule({ ...input, schedule: '*/5 * * * *' })
    expect(changed.nextRunAt).toBe('2026-06-01T10:05:00.000Z')
  })

  it('two engines reconciling one chain at once create each step exactly once', async (ctx) => {
    if (skip) return ctx.skip()
    const a = await host()
    const b = await host()
    const type = `step-${dialect}`
    for (const jobpost of [a, b]) {
      jobpost.processors.register(type, async (job) => ({ n: (job.data as { n: number }).n }))
    }
    const parent = await a.pluginHooks('p').enqueueChain(
      Array.from({ length: 5 }, (_, n) => ({ type, payload: { n } })),
      { name: 'raced chain' },
    )
    // Both engines react to every step's completion (and sweep on top of it).
    a.runtime.start()
    const deadline = Date.now() + 20_000
    while ((await a.jobs.getJob(parent.jobId))!.status !== 'completed') {
      expect(Date.now()).toBeLessThan(deadline)
      // Both engines at once, again and again, racing each other (and the engine reacting to events).
      await Promise.all([a.workflows.chains.reconcile(parent.jobId), b.workflows.chains.reconcile(parent.jobId)])
    }
    const steps = await a.jobs.getJobs({ parentJobId: parent.jobId, limit: 100 })
    expect(steps.total).toBe(5)
    expect(steps.jobs.map((job) => job.metadata.chainStep).sort()).toEqual([0, 1, 2, 3, 4])
    expect((await a.jobs.getJob(parent.jobId))!.result).toMatchObject({ result: { n: 4 } })
  })

  it('a chain whose creator stopped before its first step is started by the sweep and runs', async (ctx) => {
    if (skip) return ctx.skip()
    const clock = new ManualClock(Date.now())
    const jobpost = await host({ clock })
    const type = `orphan-step-${dialect}`
    jobpost.processors.register(type, async () => 'ok')
    // What a crash right after creating the parent leaves: a pending chain, no cursor, no step.
    const [parent] = await jobpost.jobs.createJobs([{ name: 'orphan chain', type: CHAIN_JOB_TYPE, data: { steps: [{ type }, { type }] } }])
    clock.advance(120_000)
    jobpost.runtime.start()
    await jobpost.workflows.chains.sweep()
    await eventually(async () => (await jobpost.jobs.getJob(parent!.jobId))!.status === 'completed', { timeoutMs: 10_000 })
    expect((await jobpost.jobs.getJobs({ parentJobId: parent!.jobId })).total).toBe(2)
  })

  it('pausing a chain holds its next step; resume carries it on', async (ctx) => {
    if (skip) return ctx.skip()
    const jobpost = await host()
    const type = `held-${dialect}`
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    jobpost.processors.register(type, async (job) => {
      if ((job.data as { n: number }).n === 0) await gate
      return 'ok'
    })
    const parent = await jobpost.pluginHooks('p').enqueueChain([{ type, payload: { n: 0 } }, { type, payload: { n: 1 } }])
    jobpost.runtime.start()
    await eventually(async () => (await jobpost.jobs.getJobs({ parentJobId: parent.jobId, status: 'running' })).total === 1)
    expect((await jobpost.jobs.pause(parent.jobId)).status).toBe('paused')
    release()
    await eventually(async () => (await jobpost.jobs.getJobs({ parentJobId: parent.jobId, status: 'completed' })).total === 1)
    await jobpost.workflows.chains.reconcile(parent.jobId)
    expect((await jobpost.jobs.getJobs({ parentJobId: parent.jobId })).total).toBe(1)
    expect((await jobpost.jobs.resume(parent.jobId)).status).toBe('pending')
    await eventually(async () => (await jobpost.jobs.getJob(parent.jobId))!.status === 'completed', { timeoutMs: 10_000 })
    expect((await jobpost.jobs.getJobs({ parentJobId: parent.jobId })).total).toBe(2)
  })

  it('a chain whose step’s worker is SIGKILLed resumes in another process and completes', async (ctx) => {
    if (skip) return ctx.skip()
    const producer = await host()
    const eventLog = path.join(tmp.dir, `chain-${dialect}.log`)
    const parent = await producer.pluginHooks('p').enqueueChain([
      { type: 'fixture', payload: { mode: 'fast' }, maxAttempts: 3 },
      { type: 'fixture', payload: { mode: 'hang-first' }, maxAttempts: 3 },
      { type: 'fixture', payload: { mode: 'fast' }, maxAttempts: 3 },
    ])
    const first = await spawnWorker({ databaseUrl, eventLog, leaseMs: 800 })
    children.push(first)
    // Step 2 hangs on its first attempt: kill the worker there.
    await eventually(async () => (await producer.jobs.getJobs({ parentJobId: parent.jobId, status: 'running' })).jobs.some((job) => job.metadata.chainStep === 1), {
      timeoutMs: 20_000,
    })
    first.child.kill('SIGKILL')
    await first.exited
    const second = await spawnWorker({ databaseUrl, eventLog, leaseMs: 800 })
    children.push(second)
    await eventually(async () => (await producer.jobs.getJob(parent.jobId))!.status === 'completed', { timeoutMs: 30_000, intervalMs: 100 })
    const steps = (await producer.jobs.getJobs({ parentJobId: parent.jobId })).jobs
    expect(steps).toHaveLength(3)
    expect(steps.find((job) => job.metadata.chainStep === 1)).toMatchObject({ status: 'completed', attempts: 2 })
    second.child.kill('SIGTERM')
    await second.exited
  }, 90_000)
})
