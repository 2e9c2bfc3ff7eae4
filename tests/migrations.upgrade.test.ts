import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import { afterAll, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import type { DatabaseTarget } from '../core/config.js'
import { toPublicJob } from '../core/registry/jobRecord.js'
import { migrateDown, migrateLatest, migrationSource } from '../migrations/index.js'
import { freshPostgresDatabase, startJobpost } from './support/harness.js'

/**
 * A database written by the previous storage (one meta row per field, commit 6d8ddbb: see
 * tests/fixtures/legacy/v1-jobs.json, made by that code with jobs in every status) upgrades in
 * place at start, and every job reads back exactly as that code read it.
 */
const legacy = JSON.parse(fs.readFileSync(new URL('./fixtures/legacy/v1-jobs.json', import.meta.url), 'utf8')) as {
  users: Record<string, unknown>[]
  posts: Record<string, unknown>[]
  post_meta: Record<string, unknown>[]
  post_authors: Record<string, unknown>[]
  jobs: (Record<string, unknown> & { jobId: string })[]
}

const LEGACY_MIGRATIONS = ['001_core', '002_meta_clustered', '003_ws_ticket_session']

/** The schema the previous version had, with its rows. */
async function writeLegacyDatabase(db: Database): Promise<void> {
  const source: Knex.MigrationSource<string> = { ...migrationSource, getMigrations: async () => LEGACY_MIGRATIONS }
  await db.knex.migrate.latest({ migrationSource: source })
  await db.knex('users').insert(legacy.users)
  await db.knex('posts').insert(legacy.posts)
  for (let i = 0; i < legacy.post_meta.length; i += 100) await db.knex('post_meta').insert(legacy.post_meta.slice(i, i + 100))
  await db.knex('post_authors').insert(legacy.post_authors)
  if (db.dialect === 'postgres') {
    for (const table of ['users', 'posts']) await db.knex.raw(`SELECT setval('${table}_id_seq', (SELECT MAX(id) FROM ${table}))`)
  }
}

async function upgradeAndCompare(target: DatabaseTarget) {
  const db = createDatabase(target)
  await writeLegacyDatabase(db)
  await db.close()
  // Starting the current version runs the new migrations on it.
  const jobpost = await startJobpost({ database: target }, { listen: false })
  try {
    for (const expected of legacy.jobs) {
      const record = await jobpost.jobs.getJobRecord(expected.jobId)
      expect(record, expected.jobId).not.toBeNull()
      const now = { ...toPublicJob(record!), data: record!.data, queued: record!.queued, attemptToken: record!.attemptToken, lockedUntil: record!.lockedUntil, pausedFrom: record!.pausedFrom } as Record<string, unknown>
      // Every field the previous version had reads back the same (fields added since are extra).
      expect(Object.fromEntries(Object.keys(expected).map((key) => [key, now[key]]))).toEqual(expected)
    }
    // The counters start from what was there.
    const stats = await jobpost.jobs.stats()
    const byStatus: Record<string, number> = {}
    for (const job of legacy.jobs) byStatus[job.status as string] = (byStatus[job.status as string] ?? 0) + 1
    expect(stats.byStatus).toMatchObject(byStatus)
    expect(stats.total).toBe(legacy.jobs.length)
    // And the upgraded queue runs: the pending queued jobs (all due by now) are claimed in order.
    const claimed = await jobpost.jobs.claimDueJobs({ slots: new Map([['queued-type', 10]]), limit: 10, leaseMs: 30_000 })
    expect(claimed.map((job) => job.name)).toEqual(['requeued', 'delayed'])
  } finally {
    await jobpost.close()
  }
}

describe('upgrading a database written by the previous storage', () => {
  const dirs: string[] = []
  afterAll(() => dirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))

  it('on SQLite, every job reads back the same', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-upgrade-'))
    dirs.push(dir)
    await upgradeAndCompare({ dialect: 'sqlite', filename: path.join(dir, 'legacy.sqlite') })
  })

  it('on PostgreSQL, every job reads back the same', async (ctx) => {
    const database = await freshPostgresDatabase('upgrade')
    if (!database) return ctx.skip()
    try {
      await upgradeAndCompare({ dialect: 'postgres', connectionString: database.url })
    } finally {
      await database.drop()
    }
  })

  it('and down again: the rows of the previous storage come back for every job', async () => {
    const db = createDatabase({ dialect: 'sqlite', filename: ':memory:' })
    await writeLegacyDatabase(db)
    const before = await db.knex('post_meta').select('post_id', 'meta_key', 'meta_value').orderBy(['post_id', 'meta_key'])
    await migrateLatest(db.knex)
    while ((await db.knex.migrate.currentVersion({ migrationSource })) !== '003') await db.knex.migrate.down({ migrationSource })
    const after = await db.knex('post_meta').select('post_id', 'meta_key', 'meta_value').orderBy(['post_id', 'meta_key'])
    expect(after).toEqual(before)
    await migrateDown(db.knex)
    await db.close()
  })
})
