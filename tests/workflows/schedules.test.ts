import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../core/clock.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { startJobpost, userWithRole } from '../support/harness.js'

const T = (iso: string) => Date.parse(iso)

/** A real second process on the same SQLite file (tests/workflows/support/scheduleProcess.ts). */
async function otherProcess(file: string, now: number) {
  const script = path.join(import.meta.dirname, 'support', 'scheduleProcess.ts')
  const child = fork(script, [file, String(now)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>()
  let nextId = 1
  const ready = new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.on('message', (message: { id: number; value?: unknown; error?: string }) => {
      if (message.id === 0) return resolve()
      const waiter = waiting.get(message.id)
      waiting.delete(message.id)
      if (message.error) waiter?.reject(new Error(message.error))
      else waiter?.resolve(message.value)
    })
  })
  await ready
  const call = (message: Record<string, unknown>) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++
      waiting.set(id, { resolve, reject })
      child.send({ id, ...message })
    })
  return {
    call,
    async close() {
      if (child.exitCode !== null || !child.connected) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      await call({ cmd: 'close' })
      await exited
    },
  }
}

describe('cron schedules', () => {
  let dir: string
  let file: string
  const open: Jobpost[] = []

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-schedules-'))
    file = path.join(dir, 'shared.sqlite')
  })
  afterEach(async () => {
    for (const jobpost of open.splice(0)) await jobpost.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  async function instance(clock: ManualClock) {
    const jobpost = await startJobpost({ database: { dialect: 'sqlite', filename: file } }, { clock, listen: false })
    open.push(jobpost)
    return jobpost
  }

  const nightly = { name: 'nightly-cleanup', schedule: '0 2 * * *', jobData: { type: 'cleanup', data: { olderThan: 30 } } }

  async function jobsOfType(jobpost: Jobpost, type: string) {
    return (await jobpost.jobs.getJobs({ type, limit: 500 })).jobs
  }

  it('fires at its tick exactly once across two processes sharing one SQLite file', async () => {
    const start = T('2026-03-01T01:00:00.000Z')
    const clockA = new ManualClock(start)
    const a = await instance(clockA)
    const b = await otherProcess(file, start)
    try {
      // Both processes declare the schedule at start, as a plugin does in every process.
      const created = await a.pluginHooks('backup-plugin').scheduleJob(nightly)
      await b.call({ cmd: 'schedule', input: nightly })
      expect(created.nextRunAt).toBe('2026-03-01T02:00:00.000Z')

      const setBoth = async (iso: string) => {
        clockA.set(T(iso))
        await b.call({ cmd: 'set', now: T(iso) })
      }
      const tickBoth = async () => {
        // One tick per process at the same moment (concurrent calls within a process share a tick).
        const fired = await Promise.all([b.call({ cmd: 'tick' }), a.workflows.scheduler.tick()])
        return (fired as number[]).reduce((sum, n) => sum + n, 0)
      }

      await setBoth('2026-03-01T01:59:59.999Z')
      expect(await tickBoth()).toBe(0)
      expect(await jobsOfType(a, 'cleanup')).toHaveLength(0)

      await setBoth('2026-03-01T02:00:00.300Z')
      expect(await tickBoth()).toBe(1)
      // Later ticks in the same period do not fire again.
      await setBoth('2026-03-01T02:00:20.000Z')
      expect(await tickBoth()).toBe(0)
      const jobs = await jobsOfType(a, 'cleanup')
      expect(jobs).toHaveLength(1)
      expect(jobs[0]).toMatchObject({ status: 'pending', source: 'backup-plugin', metadata: { scheduleName: 'nightly-cleanup', scheduledFor: '2026-03-01T02:00:00.000Z' } })
      const schedule = await a.workflows.scheduler.get('nightly-cleanup')
      expect(schedule).toMatchObject({ lastRunAt: '2026-03-01T02:00:00.000Z', nextRunAt: '2026-03-02T02:00:00.000Z', lastJobId: jobs[0]!.jobId })

      // The next day: one more run, whichever process ticks first.
      for (let round = 0; round < 5; round++) {
        await setBoth(`2026-03-0${round + 2}T02:00:01.000Z`)
        expect(await tickBoth()).toBe(1)
      }
      expect(await jobsOfType(a, 'cleanup')).toHaveLength(6)
    } finally {
      await b.close()
    }
  }, 90_000) // a second Node process with tsx starts slowly on a busy machine

  it('survives a restart, keeps its next run, and fires a missed run once', async () => {
    const clock = new ManualClock(T('2026-03-01T00:00:00.000Z'))
    const first = await instance(clock)
    await first.pluginHooks('p').scheduleJob({ ...nightly, timezone: 'Europe/Berlin' })
    expect((await first.workflows.scheduler.get('nightly-cleanup')).nextRunAt).toBe('2026-03-01T01:00:00.000Z')
    await first.close()
    open.splice(open.indexOf(first), 1)

    // Down for three days; on restart the plugin declares the same schedule again.
    clock.set(T('2026-03-04T12:00:00.000Z'))
    const second = await instance(clock)
    const again = await second.pluginHooks('p').scheduleJob({ ...nightly, timezone: 'Europe/Berlin' })
    expect(again.nextRunAt).toBe('2026-03-01T01:00:00.000Z')
    expect(await second.workflows.scheduler.tick()).toBe(1)
    expect(await second.workflows.scheduler.tick()).toBe(0)
    expect((await second.workflows.scheduler.get('nightly-cleanup')).nextRunAt).toBe('2026-03-05T01:00:00.000Z')
    expect(await jobsOfType(second, 'cleanup')).toHaveLength(1)
  })

  it('updates a changed pattern, unschedules, and rejects bad patterns and timezones', async () => {
    const clock = new ManualClock(T('2026-03-01T00:00:00.000Z'))
    const jobpost = await instance(clock)
    const hooks = jobpost.pluginHooks('p')
    await hooks.scheduleJob(nightly)
    const hourly = await hooks.scheduleJob({ ...nightly, schedule: '0 * * * *' })
    expect(hourly.nextRunAt).toBe('2026-03-01T01:00:00.000Z')
    await expect(hooks.scheduleJob({ ...nightly, schedule: 'every day at 2' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(hooks.scheduleJob({ ...nightly, timezone: 'Mars/Olympus' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(hooks.scheduleJob({ ...nightly, jobData: { type: 'bad type!' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(hooks.scheduleJob({ ...nightly, jobData: { type: 'x', priority: 99999 } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })

    expect(await hooks.unscheduleJob('nightly-cleanup')).toBe(true)
    expect(await hooks.unscheduleJob('nightly-cleanup')).toBe(false)
    clock.set(T('2026-03-02T00:00:00.000Z'))
    expect(await jobpost.workflows.scheduler.tick()).toBe(0)
    expect(await jobsOfType(jobpost, 'cleanup')).toHaveLength(0)
  })

  it('lists schedules at GET /api/v1/schedules for manage_jobs only', async () => {
    const clock = new ManualClock(T('2026-03-01T00:00:00.000Z'))
    const jobpost = await instance(clock)
    await jobpost.pluginHooks('p').scheduleJob(nightly)
    await jobpost.pluginHooks('p').scheduleJob({ name: 'weekly-report', schedule: '0 9 * * 1', jobData: { type: 'report' } })
    const admin = await userWithRole(jobpost, 'administrator')
    const editor = await userWithRole(jobpost, 'editor')

    const res = await request(jobpost.app).get('/api/v1/schedules?limit=1').set('Authorization', `Bearer ${admin.token}`).expect(200)
    expect(res.body).toMatchObject({ success: true, meta: { total: 2, limit: 1, offset: 0 } })
    expect(res.body.data).toEqual([
      expect.objectContaining({ name: 'nightly-cleanup', schedule: '0 2 * * *', timezone: 'UTC', owner: 'p', nextRunAt: '2026-03-01T02:00:00.000Z', jobData: { type: 'cleanup', data: { olderThan: 30 } } }),
    ])
    await request(jobpost.app).get('/api/v1/schedules').set('Authorization', `Bearer ${editor.token}`).expect(403)
    const anonymous = await request(jobpost.app).get('/api/v1/schedules').expect(401)
    expect(anonymous.body).toMatchObject({ success: false, error: { code: 'UNAUTHENTICATED' } })
    const bad = await request(jobpost.app).get('/api/v1/schedules?limit=0').set('Authorization', `Bearer ${admin.token}`).expect(400)
    expect(bad.body.error.code).toBe('VALIDATION_FAILED')
    const one = await request(jobpost.app).get('/api/v1/schedules/weekly-report').set('Authorization', `Bearer ${admin.token}`).expect(200)
    expect(one.body.data.nextRunAt).toBe('2026-03-02T09:00:00.000Z')
    await request(jobpost.app).get('/api/v1/schedules/nope').set('Authorization', `Bearer ${admin.token}`).expect(404)
  })

  it('ticks from an unref()ed timer that close() stops', async () => {
    const clock = new ManualClock(T('2026-03-01T01:59:00.000Z'))
    const jobpost = await instance(clock)
    await jobpost.pluginHooks('p').scheduleJob(nightly)
    jobpost.workflows.start()
    clock.set(T('2026-03-01T02:00:00.000Z'))
    const { eventually } = await import('../support/harness.js')
    await eventually(async () => (await jobsOfType(jobpost, 'cleanup')).length === 1, { timeoutMs: 5000 })
    await jobpost.workflows.stop()
    clock.set(T('2026-03-02T02:00:00.000Z'))
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(await jobsOfType(jobpost, 'cleanup')).toHaveLength(1)
  })
})
