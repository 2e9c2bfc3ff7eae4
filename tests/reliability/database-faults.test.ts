import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { eventually, PASSWORD, startJobpost, upgradeStatus, userWithRole, type TestUser } from '../support/harness.js'
import { tempDir } from './support/processes.js'

type Started = Jobpost & { url: string }

/** `chattr` works here (root on a filesystem with attributes): the file really becomes unwritable. */
function canChattr(dir: string): boolean {
  const probe = path.join(dir, 'probe')
  try {
    fs.writeFileSync(probe, 'x')
    execFileSync('chattr', ['+i', probe], { stdio: 'ignore' })
    execFileSync('chattr', ['-i', probe], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    fs.rmSync(probe, { force: true })
  }
}

/**
 * The SQLite database file made read-only, or removed, under a running server: requests get the
 * 503 envelope (never a 500), the runtime logs at its poll rate rather than spinning or crashing,
 * nothing is written to a stray file, and everything resumes when the file is back, with the job
 * that was running at the time finished exactly once.
 */
describe('SQLite database file made read-only or removed while running', () => {
  const tmp = tempDir('db-faults')
  const file = path.join(tmp.dir, 'jobs.sqlite')
  const logLines: { level: number; msg: string }[] = []
  let jobpost: Started
  let admin: TestUser
  let gate: { open(): void; wait: Promise<void> }
  const completions = new Map<string, number>()
  const newGate = () => {
    let open!: () => void
    const wait = new Promise<void>((resolve) => (open = resolve))
    return { open, wait }
  }

  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(JSON.parse(line)) })
    jobpost = await startJobpost(
      { database: { dialect: 'sqlite', filename: file }, workerLeaseMs: 1000, workerPollMs: 50 },
      { runWorker: true, logger },
    )
    jobpost.processors.register(
      'fault',
      async () => {
        await gate.wait
        return { ok: true }
      },
      { maxAttempts: 3, backoff: { type: 'fixed', delay: 0 } },
    )
    jobpost.hooks.on('job:completed', ({ job }) => completions.set(job.jobId, (completions.get(job.jobId) ?? 0) + 1))
    admin = await userWithRole(jobpost, 'administrator')
  })
  afterAll(async () => {
    try {
      execFileSync('chattr', ['-i', file, `${file}-wal`], { stdio: 'ignore' })
    } catch {
      // not set, or chattr unavailable
    }
    await jobpost.close({ graceMs: 0 })
    tmp.remove()
  })

  const auth = () => ({ authorization: `Bearer ${admin.token}` })
  const errorsSince = (mark: number) => logLines.slice(mark).filter((line) => line.level >= 50).length

  /** Every kind of request gets a 503 envelope or (reads) a 200, never a 500. */
  async function expectUnavailable(options: { readsMayWork: boolean }) {
    const create = await request(jobpost.app).post('/api/v1/jobs').set(auth()).send({ name: 'During the fault', type: 'fault-rest' })
    expect(create.status).toBe(503)
    expect(create.body).toEqual({ success: false, error: { code: 'DATABASE_UNAVAILABLE', message: expect.any(String) } })
    const login = await request(jobpost.app).post('/api/v1/auth/login').send({ email: admin.email, password: PASSWORD })
    expect(login.status).toBe(503)
    const list = await request(jobpost.app).get('/api/v1/jobs').set(auth())
    expect(options.readsMayWork ? [200, 503] : [503]).toContain(list.status)
    const enqueue = jobpost.pluginHooks('faults').enqueueJob({ type: 'fault' })
    await expect(enqueue).rejects.toMatchObject({ code: expect.stringMatching(/^SQLITE_/) })
  }

  it('read-only (chattr +i): 503 envelopes, no crash loop; back to normal when writable, the running job finished once', async (ctx) => {
    if (!canChattr(tmp.dir)) {
      console.warn('\n  ⚠ SKIPPED: chattr +i is not available here (needs root on ext4/xfs)\n')
      return ctx.skip()
    }
    gate = newGate()
    const running = await jobpost.pluginHooks('faults').enqueueJob({ type: 'fault' })
    await eventually(async () => (await jobpost.jobs.getJob(running.jobId))?.status === 'running')

    execFileSync('chattr', ['+i', file, `${file}-wal`])
    const mark = logLines.length
    try {
      await expectUnavailable({ readsMayWork: true })
      // The attempt ends while the file cannot be written: its settle fails, the job stays `running`.
      gate.open()
      await new Promise((resolve) => setTimeout(resolve, 1500))
      expect((await jobpost.jobs.getJob(running.jobId))!.status).toBe('running')
      // Still serving, and complaining at the poll rate (50 ms), not in a tight loop.
      await request(jobpost.app).get('/api/v1/auth/me').set(auth()).expect(200)
      expect(errorsSince(mark)).toBeLessThan(150)
    } finally {
      execFileSync('chattr', ['-i', file, `${file}-wal`])
    }

    await request(jobpost.app).post('/api/v1/jobs').set(auth()).send({ name: 'After', type: 'fault-rest' }).expect(201)
    // The lease of the interrupted attempt runs out; the job is recovered, run again, and completed once.
    await eventually(async () => (await jobpost.jobs.getJob(running.jobId))?.status === 'completed', { timeoutMs: 10_000 })
    expect(await jobpost.jobs.getJobRecord(running.jobId)).toMatchObject({ status: 'completed', attempts: 2, lockedUntil: null })
    expect(completions.get(running.jobId)).toBe(1)
  }, 30_000)

  it('removed: 503 everywhere (REST, WebSocket upgrade, plugin API), no empty database created, all back when it returns', async () => {
    gate = newGate()
    gate.open()
    const before = await jobpost.pluginHooks('faults').enqueueJob({ type: 'fault' })
    await eventually(async () => (await jobpost.jobs.getJob(before.jobId))?.status === 'completed')

    const moved = `${file}.moved`
    fs.renameSync(file, moved)
    const mark = logLines.length
    try {
      await new Promise((resolve) => setTimeout(resolve, 150))
      await expectUnavailable({ readsMayWork: false })
      expect(await upgradeStatus(`${jobpost.url.replace('http', 'ws')}/ws`, auth())).toBe(503)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      // Nothing recreated an empty database in its place, and nothing crashed or spun.
      expect(fs.existsSync(file)).toBe(false)
      expect(errorsSince(mark)).toBeLessThan(150)
    } finally {
      fs.renameSync(moved, file)
    }

    await new Promise((resolve) => setTimeout(resolve, 150))
    await request(jobpost.app).get('/api/v1/jobs').set(auth()).expect(200)
    const after = await jobpost.pluginHooks('faults').enqueueJob({ type: 'fault' })
    await eventually(async () => (await jobpost.jobs.getJob(after.jobId))?.status === 'completed', { timeoutMs: 10_000 })
    // What was there before the fault is all still there.
    expect((await jobpost.jobs.getJob(before.jobId))!.status).toBe('completed')
    expect(completions.get(after.jobId)).toBe(1)
    expect(await upgradeStatus(`${jobpost.url.replace('http', 'ws')}/ws`, auth())).toBe(101)
  }, 30_000)
})
