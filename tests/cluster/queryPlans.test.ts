import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { seedJobs } from '../../bench/seed.js'
import { freshPostgresDatabase, startJobpost } from '../support/harness.js'

/**
 * The hot paths' real SQL (captured from knex while the registry runs them), explained by each
 * dialect's planner: every one must be served by an index, so that it stays O(log n) at a million
 * jobs. Plans at scale are in docs/PERFORMANCE.md.
 */
const DAY_MS = 24 * 3600 * 1000

interface Captured {
  sql: string
  bindings: unknown[]
}

async function seed(jobpost: Jobpost) {
  const now = Date.now()
  await seedJobs(jobpost.store, 3000, (i) => {
    if (i < 300) return { status: 'completed', at: new Date(now - 90 * DAY_MS + i).toISOString() }
    if (i % 30 === 0) return { status: 'running', at: new Date(now - 60_000).toISOString() }
    if (i % 10 === 0) return { status: 'pending', at: new Date(now - 1000).toISOString() }
    return { status: 'completed', at: new Date(now - DAY_MS).toISOString() }
  })
  await jobpost.store.optimize()
}

/** Runs `work` and returns the SELECTs it sent. */
async function selectsOf(jobpost: Jobpost, work: () => Promise<unknown>): Promise<Captured[]> {
  const captured: Captured[] = []
  const onQuery = (query: { sql: string; bindings?: unknown[] }) => {
    if (/^\s*select/i.test(query.sql)) captured.push({ sql: query.sql, bindings: query.bindings ?? [] })
  }
  jobpost.db.knex.on('query', onQuery)
  try {
    await work()
  } finally {
    jobpost.db.knex.off('query', onQuery)
  }
  return captured
}

const hotPaths: [string, (jobpost: Jobpost) => Promise<unknown>, string][] = [
  ['the list (status=running, newest first, with its total)', (j) => j.jobs.getJobs({ status: 'running', limit: 50 }), 'post_meta_status_idx'],
  ['the claim (queue_order scan)', (j) => j.jobs.claimDueJobs({ slots: new Map([['bench-noop', 10]]), limit: 10, leaseMs: 30_000 }), 'post_meta_queue_order_idx'],
  ['lease expiry (locked_until)', (j) => j.jobs.findExpiredLeases(100), 'post_meta_locked_until_idx'],
  ['cleanup (completed_at)', (j) => j.jobs.cleanupOldJobs(30), 'post_meta_completed_at_idx'],
]

describe('query plans on SQLite', () => {
  let jobpost: Jobpost
  beforeAll(async () => {
    jobpost = await startJobpost({}, { listen: false })
    await seed(jobpost)
  })
  afterAll(() => jobpost.close())

  for (const [label, work, index] of hotPaths) {
    it(`${label} uses ${index}, with no full scan and no sort of the whole set`, async () => {
      const plans: string[] = []
      for (const query of await selectsOf(jobpost, () => work(jobpost))) {
        const rows = (await jobpost.db.knex.raw(`EXPLAIN QUERY PLAN ${query.sql}`, query.bindings as never)) as { detail: string }[]
        plans.push(rows.map((row) => row.detail).join('\n'))
      }
      const all = plans.join('\n')
      expect(all).toContain(index)
      // `SCAN t` alone is a full table scan; `SCAN t USING ... INDEX` walks an index in order.
      expect(all).not.toMatch(/^SCAN \w+$/m)
      // The list sorts only its (few) running jobs; the scans must come out of the index in order.
      if (index !== 'post_meta_status_idx') expect(all).not.toContain('TEMP B-TREE')
    })
  }
})

describe('query plans on PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  let jobpost: Jobpost | undefined
  beforeAll(async () => {
    database = await freshPostgresDatabase('cluster_plans')
    if (!database) return
    jobpost = await startJobpost({ database: { dialect: 'postgres', connectionString: database.url } }, { listen: false })
    await seed(jobpost)
  })
  afterAll(async () => {
    await jobpost?.close()
    await database?.drop()
  })

  for (const [label, work, index] of hotPaths) {
    it(`${label} can use ${index} (no sequential scan)`, async (ctx) => {
      if (!database) return ctx.skip()
      const plans: string[] = []
      for (const query of await selectsOf(jobpost!, () => work(jobpost!))) {
        // At 3,000 jobs, scanning and hashing everything is cheapest, so PostgreSQL rightly does
        // that; leave it only index scans and nested loops to see the plan the indexes allow, the
        // one it picks at a million rows (docs/PERFORMANCE.md shows those plans).
        const rows = await jobpost!.db.knex.transaction(async (trx) => {
          for (const setting of ['enable_seqscan', 'enable_bitmapscan', 'enable_hashjoin', 'enable_mergejoin']) {
            await trx.raw(`SET LOCAL ${setting} = off`)
          }
          return (await trx.raw(`EXPLAIN ${query.sql.replace(/\$\d+/g, '?')}`, query.bindings as never)).rows as { 'QUERY PLAN': string }[]
        })
        plans.push(rows.map((row) => row['QUERY PLAN']).join('\n'))
      }
      const all = plans.join('\n')
      // Cleanup may also start from the status index (finished jobs), then check completed_at per
      // row; which one is cheaper depends on the data, and PostgreSQL decides from its statistics.
      const allowed = index === 'post_meta_completed_at_idx' ? [index, 'post_meta_status_idx'] : [index]
      expect(allowed.some((name) => all.includes(name))).toBe(true)
      expect(all).not.toContain('Seq Scan')
    })
  }
})
