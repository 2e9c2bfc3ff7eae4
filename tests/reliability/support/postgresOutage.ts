import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { promisify } from 'node:util'
import pg from 'pg'
import pino from 'pino'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../../core/createJobpost.js'
import { connectWs, eventually, freshPostgresDatabase, POSTGRES_URL, startJobpost, userWithRole } from '../../support/harness.js'

/**
 * - `restart`: `pg_ctlcluster ... restart` of the local server (disrupts every database on it, so
 *   it runs in the serial soak run, `npm run test:soak`);
 * - `terminate`: for ~2 s every backend of the test's own database is killed as soon as it appears
 *   (57P01 admin_shutdown, what clients see of a restart), which leaves other test files alone and
 *   so runs in `npm test`.
 */
export type OutageKind = 'restart' | 'terminate'

interface Cluster {
  version: string
  name: string
}

/** The local cluster, when this machine runs the test PostgreSQL (pg_ctlcluster). */
function localCluster(): Cluster | null {
  if (!/@(127\.0\.0\.1|localhost)[:/]/.test(POSTGRES_URL)) return null
  try {
    const version = fs.readdirSync('/etc/postgresql')[0]
    return version ? { version, name: 'main' } : null
  } catch {
    return null
  }
}

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 1000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** Asynchronous, so that the server under test keeps running (and being asked) meanwhile. */
async function outage(kind: OutageKind, databaseUrl: string): Promise<void> {
  if (kind === 'restart') {
    const cluster = localCluster()!
    await promisify(execFile)('pg_ctlcluster', ['--skip-systemctl-redirect', cluster.version, cluster.name, 'restart'], { timeout: 60_000 })
    return
  }
  const name = new URL(databaseUrl).pathname.slice(1)
  const killer = new pg.Client({ connectionString: POSTGRES_URL })
  await killer.connect()
  try {
    const until = Date.now() + 2000
    while (Date.now() < until) {
      await killer.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  } finally {
    await killer.end()
  }
}

/**
 * PostgreSQL goes away while jobs run: the pool reconnects, requests made meanwhile get 503 (not
 * 500, and not a hang), no job is lost or completed twice, and the WebSocket keeps working.
 */
export function describePostgresOutage(kind: OutageKind, jobsCount = 400): void {
  describe(`PostgreSQL ${kind === 'restart' ? 'restarted' : 'connections killed'} under load`, () => {
    const cluster = localCluster()
    let database: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
    let jobpost: (Jobpost & { url: string }) | undefined

    beforeAll(async () => {
      if (kind === 'restart' && !cluster) return
      database = await freshPostgresDatabase(`pg_outage_${kind}`)
    })
    afterAll(async () => {
      // Whatever happened, leave PostgreSQL up for everyone else.
      if (kind === 'restart' && cluster && !(await postgresAnswers())) {
        execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', cluster.version, cluster.name, 'start'], { stdio: 'ignore' })
      }
      await eventually(postgresAnswers, { timeoutMs: 30_000, intervalMs: 200 }).catch(() => undefined)
      await jobpost?.close({ graceMs: 0 })
      await database?.drop()
    }, 60_000)

    it('reconnects; no job lost, none completed twice; 503 meanwhile', async (ctx) => {
      if (!database) {
        console.warn(`\n  ⚠ SKIPPED: no ${kind === 'restart' ? 'local PostgreSQL cluster to restart' : 'PostgreSQL'}\n`)
        return ctx.skip()
      }
      const serverErrors: string[] = []
      jobpost = await startJobpost(
        { database: { dialect: 'postgres', connectionString: database.url }, workerLeaseMs: 3000, workerPollMs: 50, workerConcurrency: 10 },
        { runWorker: true, logger: pino({ level: 'error' }, { write: (line: string) => void serverErrors.push(line) }) },
      )
      const successes = new Map<string, number>()
      const completions = new Map<string, number>()
      jobpost.processors.register(
        'pg-outage',
        async (job) => {
          await new Promise((resolve) => setTimeout(resolve, 10))
          successes.set(job.jobId, (successes.get(job.jobId) ?? 0) + 1)
          return { ok: true }
        },
        { maxAttempts: 20, backoff: { type: 'fixed', delay: 100 } },
      )
      jobpost.hooks.on('job:completed', ({ job }) => completions.set(job.jobId, (completions.get(job.jobId) ?? 0) + 1))
      const admin = await userWithRole(jobpost, 'administrator')
      const ws = await connectWs(jobpost, { token: admin.token })
      const hooks = jobpost.pluginHooks('pg-outage')
      const jobs = await hooks.enqueueJobs(Array.from({ length: jobsCount }, (_, n) => ({ type: 'pg-outage', data: { n } })))
      await eventually(() => completions.size >= jobsCount / 4, { timeoutMs: 30_000 })

      // Requests keep coming while PostgreSQL goes away and comes back.
      const statuses: number[] = []
      let polling = true
      const poller = (async () => {
        while (polling) {
          const started = Date.now()
          const res = await request(jobpost!.app).get('/api/v1/jobs/stats').set('authorization', `Bearer ${admin.token}`)
          statuses.push(res.status)
          expect(Date.now() - started, 'a request hung while PostgreSQL was away').toBeLessThan(15_000)
          await new Promise((resolve) => setTimeout(resolve, 25))
        }
      })()
      const before = completions.size
      await outage(kind, database.url)
      await eventually(postgresAnswers, { timeoutMs: 30_000, intervalMs: 100 })
      // Work goes on afterwards.
      await eventually(() => completions.size > before + 10 || completions.size === jobsCount, { timeoutMs: 30_000 })
      polling = false
      await poller

      await eventually(async () => completions.size === jobsCount, { timeoutMs: 60_000, intervalMs: 200 })
      const stats = await jobpost.jobs.stats()
      expect(stats.byStatus).toMatchObject({ completed: jobsCount, pending: 0, running: 0, failed: 0 })
      expect([...completions.values()].every((n) => n === 1)).toBe(true)
      // A processor may run again when its settle was cut off (at-least-once execution); then the
      // job shows each attempt counted, and it still completed once.
      for (const [jobId, runs] of successes) {
        if (runs > 1) expect((await jobpost.jobs.getJobRecord(jobId))!.attempts).toBeGreaterThanOrEqual(runs)
      }
      expect(jobs.every((job) => completions.get(job.jobId) === 1)).toBe(true)
      const unhandled = serverErrors.filter((line) => line.includes('Unhandled error'))
      expect(statuses.filter((status) => status !== 200 && status !== 503), unhandled.slice(0, 3).join('\n')).toEqual([])
      // The outage was seen (and answered 503), and so was the recovery.
      expect(statuses).toContain(503)
      await request(jobpost.app).get('/api/v1/jobs/stats').set('authorization', `Bearer ${admin.token}`).expect(200)

      // The WebSocket saw work from after the outage, and new sockets authenticate again.
      const late = await hooks.enqueueJob({ type: 'pg-outage' })
      await ws.next((m) => m.type === 'job_update' && m.job.jobId === late.jobId && m.job.status === 'completed', 10_000)
      const again = await connectWs(jobpost, { token: admin.token })
      await again.close()
      await ws.close()
    }, 180_000)
  })
}
