import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../core/createJobpost.js'
import { numbered, queueSql } from '../core/store/jobs/jobSql.js'
import { freshPostgresDatabase, startJobpost } from './support/harness.js'

/** The Queue view's page walks the claim index (due) or the delayed index, on both dialects. */
describe('query plans of the Queue listing', () => {
  let sqlite: Jobpost
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>>
  let postgres: Jobpost | undefined

  beforeAll(async () => {
    sqlite = await startJobpost({}, { listen: false })
    pg = await freshPostgresDatabase('reorder_plan')
    if (pg) postgres = await startJobpost({ database: { dialect: 'postgres', connectionString: pg.url } }, { listen: false })
  })
  afterAll(async () => {
    await sqlite?.close()
    await postgres?.close()
    await pg?.drop()
  })

  // The SQLite store names the index (namedIndex), as the store does; PostgreSQL plans from statistics.
  const page = (delayed: boolean, namedIndex = false) => queueSql({ type: 'render', delayed, limit: 100, offset: 0, cap: 10_001 }, { namedIndex })

  it('SQLite: the due page uses job_state_claim_idx without sorting; the delayed page the delayed jobs of the type by run time (010)', async () => {
    for (const [delayed, index] of [[false, 'job_state_claim_idx'], [true, 'job_state_delayed_type_idx']] as const) {
      const { sql, values } = page(delayed, true)
      const rows = (await sqlite.db.knex.raw(`EXPLAIN QUERY PLAN ${sql}`, values as never[])) as { detail: string }[]
      const plan = rows.map((row) => row.detail).join(' | ')
      expect(plan).toContain(index)
      expect(plan).not.toContain('TEMP B-TREE')
    }
  })

  it('PostgreSQL: the due page walks job_state_claim_idx without sorting, the delayed page an index of delayed jobs', async (ctx) => {
    if (!postgres) return ctx.skip()
    // Enough rows that a sequential scan is not the cheap choice.
    await postgres.pluginHooks('plan').enqueueJobs(Array.from({ length: 3000 }, (_, i) => ({ type: i % 3 ? 'other' : 'render', name: `p${i}` })))
    await postgres.pluginHooks('plan').enqueueJobs(Array.from({ length: 600 }, (_, i) => ({ type: i % 30 ? 'other' : 'render', name: `d${i}`, delay: 3_600_000 + i })))
    await postgres.db.knex.raw('ANALYZE job_state')
    const explain = async (delayed: boolean) => {
      const { sql, values } = page(delayed)
      const result = await postgres!.db.knex.raw(`EXPLAIN ${numbered(sql).replace(/\$(\d+)/g, (_, n) => `'${String(values[Number(n) - 1])}'`)}`)
      return (result.rows as { 'QUERY PLAN': string }[]).map((row) => row['QUERY PLAN']).join('\n')
    }
    const due = await explain(false)
    expect(due).toContain('job_state_claim_idx')
    expect(due).not.toMatch(/Sort/)
    // Delayed: one of the two partial indexes of delayed jobs (the planner picks by the type's share), never a scan of the table.
    const delayed = await explain(true)
    expect(delayed).toMatch(/job_state_delayed(_type)?_idx/)
    expect(delayed).not.toMatch(/Seq Scan/)
  })
})
