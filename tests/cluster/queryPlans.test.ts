import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { seedJobs } from '../../bench/seed.js'
import { freshPostgresDatabase, startJobpost } from '../support/harness.js'

/**
 * The hot paths' real SQL (every statement the job store runs, seen through its `trace`),
 * explained by each dialect's planner: each must be served by the index named, never a scan of
 * every job, so that it stays O(log n + page) at a million jobs. Plans at scale: docs/PERFORMANCE.md.
 */
const DAY_MS = 24 * 3600 * 1000

interface Captured {
  sql: string
  values: unknown[]
}

async function seed(jobpost: Jobpost) {
  const now = Date.now()
  await seedJobs(jobpost.jobStore, 3000, (i) => {
    if (i < 300) return { status: 'completed', at: new Date(now - 90 * DAY_MS + i).toISOString() }
    if (i % 30 === 0) return { status: 'running', at: new Date(now - 60_000).toISOString(), type: i % 60 ? 'bench-noop' : 'other' }
    if (i % 10 === 0) return { status: 'pending', at: new Date(now - 1000).toISOString() }
    return { status: i % 7 ? 'completed' : 'failed', at: new Date(now - DAY_MS).toISOString() }
  })
  if (jobpost.db.dialect === 'postgres') await jobpost.db.knex.raw('ANALYZE')
}

async function statementsOf(jobpost: Jobpost, work: () => Promise<unknown>): Promise<Captured[]> {
  const captured: Captured[] = []
  jobpost.jobStore.trace = (sql, values) => captured.push({ sql, values })
  try {
    await work()
  } finally {
    jobpost.jobStore.trace = undefined
  }
  return captured
}

const hotPaths: [string, (jobpost: Jobpost) => Promise<unknown>, string[]][] = [
  ['a tab’s first page (running, newest first)', (j) => j.jobs.getJobs({ status: 'running', limit: 50 }), ['job_state_status_created_idx']],
  ['the Active tab (pending + running)', (j) => j.jobs.getJobs({ status: ['pending', 'running'], limit: 20 }), ['job_state_status_created_idx']],
  ['a tab filtered by type', (j) => j.jobs.getJobs({ status: 'running', type: 'other', limit: 20 }), ['job_state_type_status_created_idx']],
  ['the Completed tab by completion time', (j) => j.jobs.getJobs({ status: 'completed', sort: '-completedAt', limit: 20 }), ['job_state_status_completed_idx']],
  ['the All tab by priority', (j) => j.jobs.getJobs({ sort: '-priority', limit: 20 }), ['job_state_status_priority_idx']],
  ['the Active tab by run time', (j) => j.jobs.getJobs({ status: ['pending', 'running'], sort: 'runAt', limit: 20 }), ['job_state_status_run_at_idx']],
  ['a user’s own jobs', (j) => j.jobs.getJobs({ createdBy: 1, status: 'failed', limit: 20 }), ['job_state_owner_status_created_idx']],
  ['the claim', (j) => j.jobs.claimDueJobs({ slots: new Map([['bench-noop', 10]]), limit: 10, leaseMs: 30_000 }), ['job_state_claim_idx']],
  ['lease expiry', (j) => j.jobs.findExpiredLeases(100), ['job_state_lease_idx']],
  ['delayed jobs coming due', (j) => j.jobStore.promoteDue(Date.now()), ['job_state_delayed_idx']],
  ['lease renewal', (j) => j.jobs.renewLeases(['a-token'], 30_000), ['job_state_token_idx']],
  ['cleanup', (j) => j.jobs.cleanupOldJobs(30), ['job_state_status_completed_idx']],
]

/** SQLite: `SCAN t` alone is a full table scan; `SCAN t USING ... INDEX` walks an index in order. */
const FULL_SCAN = /^SCAN (job_state|j|posts|p|post_meta)$/m

describe('query plans on SQLite', () => {
  let jobpost: Jobpost
  beforeAll(async () => {
    jobpost = await startJobpost({}, { listen: false })
    await seed(jobpost)
  })
  afterAll(() => jobpost.close())

  for (const [label, work, indexes] of hotPaths) {
    it(`${label} uses ${indexes.join(' or ')}, with no full scan`, async () => {
      const plans: string[] = []
      const statements = await statementsOf(jobpost, () => work(jobpost))
      for (const statement of statements) {
        const rows = (await jobpost.db.knex.raw(`EXPLAIN QUERY PLAN ${statement.sql}`, statement.values as never)) as { detail: string }[]
        plans.push(rows.map((row) => row.detail).join('\n'))
      }
      const all = plans.join('\n')
      expect(plans.length).toBeGreaterThan(0)
      // A write of known jobs finds them by post id, never by walking a status.
      for (const [index, statement] of statements.entries()) {
        if (/^\s*UPDATE job_state\b[\s\S]*\bWHERE post_id\b/.test(statement.sql)) expect(plans[index]).toMatch(/INTEGER PRIMARY KEY/)
      }
      expect(indexes.some((index) => all.includes(index))).toBe(true)
      expect(all).not.toMatch(FULL_SCAN)
    })
  }

  it('stats read the counters only (O(types)), never the jobs', async () => {
    const statements = await statementsOf(jobpost, () => jobpost.jobs.stats())
    expect(statements.length).toBeGreaterThan(0)
    for (const { sql } of statements) expect(sql).not.toMatch(/\bjob_state\b|\bposts\b/)
  })

  // Background ticks ask the post store for a few posts of their type by a meta key that has no
  // index of its own (a schedule's next_run_at every second, an instance's last_seen every 5 s):
  // the post type's index must serve them, never a walk of every post (every job is one).
  it.each([
    ['the schedule tick', { postType: 'job_schedules', where: [{ key: 'next_run_at', lte: '2999-01-01' }], limit: 100 }],
    ['the instance sweep', { postType: 'jobpost_instance', where: [{ key: 'last_seen', lt: '2999-01-01' }], limit: 100 }],
  ] as const)('%s finds its posts by post type, with no scan of every post', async (_label, query) => {
    const captured: { sql: string; bindings: unknown[] }[] = []
    const listener = (q: { sql: string; bindings: unknown[] }) => void captured.push(q)
    jobpost.db.knex.on('query', listener)
    try {
      await jobpost.store.findPostIds({ ...query, where: [...query.where] })
    } finally {
      jobpost.db.knex.off('query', listener)
    }
    expect(captured).toHaveLength(1)
    const rows = (await jobpost.db.knex.raw(`EXPLAIN QUERY PLAN ${captured[0]!.sql}`, captured[0]!.bindings as never)) as { detail: string }[]
    const plan = rows.map((row) => row.detail).join('\n')
    expect(plan).toMatch(/posts_type_created_idx/)
    expect(plan).not.toMatch(FULL_SCAN)
  })
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

  for (const [label, work, indexes] of hotPaths) {
    it(`${label} can use ${indexes.join(' or ')} (no sequential scan)`, async (ctx) => {
      if (!database) return ctx.skip()
      const client = new pg.Client({ connectionString: database.url })
      await client.connect()
      try {
        const plans: string[] = []
        for (const statement of await statementsOf(jobpost!, () => work(jobpost!))) {
          // At 3,000 jobs, scanning everything is cheapest, so PostgreSQL rightly does that; leave
          // it only index scans and nested loops to see the plan the indexes allow (the one it
          // picks at a million rows).
          await client.query('BEGIN')
          for (const setting of ['enable_seqscan', 'enable_bitmapscan', 'enable_hashjoin', 'enable_mergejoin']) {
            await client.query(`SET LOCAL ${setting} = off`)
          }
          const result = await client.query(`EXPLAIN ${statement.sql}`, statement.values)
          await client.query('ROLLBACK')
          plans.push(result.rows.map((row: { 'QUERY PLAN': string }) => row['QUERY PLAN']).join('\n'))
        }
        const all = plans.join('\n')
        expect(indexes.some((index) => all.includes(index))).toBe(true)
        expect(all).not.toMatch(/Seq Scan on (job_state|posts|post_meta)\b/)
      } finally {
        await client.end()
      }
    })
  }
})
