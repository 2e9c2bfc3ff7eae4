import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v4 as uuidv4 } from 'uuid'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { createJobStore } from '../core/store/jobs/index.js'
import type { JobStore, NewJob } from '../core/store/jobs/JobStore.js'
import { migrateLatest } from '../migrations/index.js'
import { freshPostgresDatabase } from './support/harness.js'

/**
 * JobStore.changeAndInsert on both dialects (what a chain's advance relies on, issue 12): the
 * jobs are created only if the fenced change held, the change stands only if the jobs were
 * created, and of concurrent movers from one cursor value exactly one creates its job.
 */
const T0 = Date.parse('2026-06-01T00:00:00.000Z')

function newJob(over: Partial<NewJob['state']> = {}, jobId = uuidv4()): NewJob {
  return {
    jobId,
    name: 'step',
    meta: {},
    state: {
      type: 'step', status: 'pending', queued: true, delayed: false, priority: 0, runAt: T0, attempts: 0, maxAttempts: 3,
      attemptToken: null, lockedUntil: null, progress: 0, timeoutMs: null, showNotification: true, createdBy: null,
      owner: 'p:atomic', source: 'atomic', parentJobId: null, pausedFrom: null, createdAt: T0, updatedAt: T0,
      startedAt: null, completedAt: null, ...over,
    },
  }
}

const dialects = [
  ['sqlite', async () => ({ db: createDatabase({ dialect: 'sqlite', filename: ':memory:' }), drop: async () => {} })],
  [
    'postgres',
    async () => {
      const pg = await freshPostgresDatabase('change_and_insert')
      return pg ? { db: createDatabase({ dialect: 'postgres', connectionString: pg.url }), drop: () => pg.drop() } : null
    },
  ],
] as const

describe.each(dialects)('JobStore.changeAndInsert (%s)', (_label, open) => {
  let db: Database
  let store: JobStore
  let drop = async () => {}
  let skipped = false

  beforeAll(async () => {
    const opened = await open()
    if (!opened) return void (skipped = true)
    ;({ db, drop } = opened)
    await migrateLatest(db.knex)
    store = createJobStore(db)
  })
  afterAll(async () => {
    await store?.close()
    await db?.close()
    await drop()
  })

  async function parentWithCursor(value: string) {
    const parent = newJob({ type: 'chain', status: 'running', queued: false })
    const [postId] = await store.insert([{ ...parent, meta: { chain_step: value } }])
    return postId!
  }

  it('creates the jobs with the change, and neither when the fence does not hold', async (ctx) => {
    if (skipped) return ctx.skip()
    const postId = await parentWithCursor('0')
    const step = newJob({ parentJobId: 'p' })
    const moved = await store.changeAndInsert({ postId, from: ['running'], set: {}, meta: { chain_step: '1' }, metaEquals: { chain_step: '0' } }, [step], T0 + 1)
    expect(moved!.postIds).toHaveLength(1)
    expect((await store.getByJobId(step.jobId))!.state.postId).toBe(moved!.postIds[0])
    expect((await store.getByPostIds([postId]))[0]!.meta.chain_step).toBe('1')

    const stale = newJob()
    expect(await store.changeAndInsert({ postId, from: ['running'], set: {}, meta: { chain_step: '1' }, metaEquals: { chain_step: '0' } }, [stale], T0 + 2)).toBeNull()
    expect(await store.getByJobId(stale.jobId)).toBeNull()
  })

  it('rolls the change back when the insert fails', async (ctx) => {
    if (skipped) return ctx.skip()
    const postId = await parentWithCursor('4')
    const existing = newJob()
    await store.insert([existing])
    // Same jobId (the post slug is unique per type): the insert fails inside the transaction.
    await expect(
      store.changeAndInsert({ postId, from: ['running'], set: {}, meta: { chain_step: '5' }, metaEquals: { chain_step: '4' } }, [newJob({}, existing.jobId)], T0 + 1),
    ).rejects.toThrow()
    expect((await store.getByPostIds([postId]))[0]!.meta.chain_step).toBe('4')
  })

  it('of concurrent movers from one value, exactly one creates its job', async (ctx) => {
    if (skipped) return ctx.skip()
    const postId = await parentWithCursor('7')
    const steps = Array.from({ length: 8 }, () => newJob())
    const results = await Promise.all(
      steps.map((step) => store.changeAndInsert({ postId, from: ['running'], set: {}, meta: { chain_step: '8' }, metaEquals: { chain_step: '7' } }, [step], T0 + 1)),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    const created = (await Promise.all(steps.map((step) => store.getByJobId(step.jobId)))).filter(Boolean)
    expect(created).toHaveLength(1)
  })
})
