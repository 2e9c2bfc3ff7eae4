import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v4 as uuidv4 } from 'uuid'
import type { JobSort, JobStatus } from '../core/contract.js'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import type { JobListQuery, NewJob } from '../core/store/jobs/JobStore.js'
import { ownerScope } from '../core/store/jobs/jobSql.js'
import { PostgresJobStore } from '../core/store/jobs/PostgresJobStore.js'
import { SqliteJobStore } from '../core/store/jobs/SqliteJobStore.js'
import { sqliteSearchRow } from '../core/store/jobs/search/document.js'
import { searchWords } from '../core/store/jobs/search/query.js'
import type { SearchLimits } from '../core/store/jobs/search/sqliteSearch.js'
import { migrateLatest } from '../migrations/index.js'
import { freshPostgresDatabase } from './support/harness.js'

/**
 * Every plan a SQLite search can take (search/sqliteSearch.ts: the few known matches, the walk
 * over the known set, the filter-driven statement, the walk with index lookups below the known
 * matches, and for totals the index count, the filter-driven count and the budgeted walk) gives
 * the page a brute-force reading of every job gives, on a database small enough to read whole,
 * with thresholds small enough that each plan is taken. A total is exact when complete, else a
 * lower bound. The same on PostgreSQL (few matches: the page over them; many: the ordered walk
 * checking each row, totals as a set or row by row).
 */
const LIMITS: SearchLimits = {
  rareMatches: 20,
  newestShared: 60,
  walkSlice: 50,
  countSlice: 40,
  countBudget: 150,
  filterDrivenMax: 300,
  filterDrivenMatches: 700,
}
const JOBS = 2400
const T0 = Date.parse('2026-06-01T00:00:00.000Z')

function job(i: number): NewJob {
  const createdBy = i % 17 === 0 ? 1 : i % 5 === 1 ? 2 : null
  const status: JobStatus = i % 13 === 0 ? 'failed' : i % 3 === 0 ? 'completed' : i % 7 === 0 ? 'cancelled' : 'pending'
  const words = [i % 2 === 0 ? 'alpha' : '', i % 6 === 0 ? 'beta' : '', i % 100 === 0 ? 'gamma' : '', `delta${i % 7}`, `omega${i}`]
  return {
    jobId: uuidv4(),
    name: `Job ${i}`,
    meta: { data: JSON.stringify({ note: words.filter(Boolean).join(' '), shop: `shop-${i % 10}`, order: { id: i } }) },
    state: {
      type: `t${i % 4}`, status, queued: true, delayed: false, priority: i % 5, runAt: T0 + ((i * 7919) % JOBS) * 1000, attempts: 0,
      maxAttempts: 3, attemptToken: null, lockedUntil: null, progress: 0, timeoutMs: null, showNotification: true, createdBy,
      owner: ownerScope(createdBy, 'plans'), source: 'plans', parentJobId: null, pausedFrom: null,
      // A few share a creation time (ties are ordered by post id).
      createdAt: T0 + Math.floor(i / 3) * 1000, updatedAt: T0, startedAt: null, completedAt: null,
    },
  }
}

type Query = Omit<JobListQuery, 'sort' | 'limit' | 'offset' | 'after'>

const SORT_KEY: Record<string, (state: NewJob['state']) => number> = {
  createdAt: (state) => state.createdAt,
  priority: (state) => state.priority,
  runAt: (state) => state.runAt,
}

for (const where of ['memory', 'file', 'postgres'] as const) {
  describe(`search plans agree with reading every job (${where === 'postgres' ? 'PostgreSQL' : `SQLite ${where}`})`, () => {
    let db: Database
    let store: SqliteJobStore | PostgresJobStore
    let dir = ''
    let drop = async () => {}
    let skipped = false
    const jobs: (NewJob & { postId: number; words: string[] })[] = []
    const statements: string[] = []

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-search-plans-'))
      if (where === 'postgres') {
        const fresh = await freshPostgresDatabase('search plans')
        if (!fresh) return void (skipped = true)
        drop = fresh.drop
        db = await createDatabase({ dialect: 'postgres', connectionString: fresh.url })
      } else {
        db = await createDatabase({ dialect: 'sqlite', filename: where === 'file' ? path.join(dir, 'jobs.sqlite') : ':memory:' })
      }
      await migrateLatest(db.knex)
      for (const id of [1, 2]) {
        await db.knex('users').insert({ id, email: `u${id}@example.com`, display_name: `U${id}`, password_hash: 'x', created_at: new Date(T0).toISOString() })
      }
      if (where === 'postgres') {
        store = new PostgresJobStore(db.knex, { searchRareMatches: LIMITS.rareMatches })
      } else {
        const sqlite = new SqliteJobStore(db.knex, { searchLimits: LIMITS })
        sqlite.trace = (sql) => void statements.push(sql)
        store = sqlite
      }
      // Small transactions (pending rows) and large ones (straight into FTS5), then a move.
      const all = Array.from({ length: JOBS }, (_, i) => job(i))
      for (let i = 0; i < JOBS; i += i < 300 ? 1 : 500) {
        const chunk = all.slice(i, i < 300 ? i + 1 : i + 500)
        const ids = await store.insert(chunk)
        chunk.forEach((stored, k) => jobs.push({ ...stored, postId: ids[k]!, words: sqliteSearchRow(stored.name, stored.meta).body.trim().split(' ') }))
        if (i === 150) await store.maintain()
      }
    }, 60_000)
    afterAll(async () => {
      await store?.close()
      await db?.close()
      await drop()
      fs.rmSync(dir, { recursive: true, force: true })
    })

    /** The matches by reading every job: words as prefixes, data and other filters exactly. */
    const expected = (query: Query, sort: JobSort) => {
      const words = searchWords(query.search ?? '')
      const key = SORT_KEY[sort.replace('-', '')]!
      const dir = sort.startsWith('-') ? -1 : 1
      return jobs
        .filter((row) => words.every((word) => row.words.some((candidate) => candidate.startsWith(word))))
        .filter((row) => (query.dataFilters ?? []).every((filter) => String(JSON.parse(row.meta.data!)[filter.path]) === filter.value))
        .filter((row) => (!query.statuses || query.statuses.includes(row.state.status)) && (query.type === undefined || row.state.type === query.type))
        .filter((row) => query.createdBy === undefined || row.state.createdBy === query.createdBy)
        .sort((a, b) => dir * (key(a.state) - key(b.state) || a.postId - b.postId))
        .map((row) => row.postId)
    }

    const QUERIES: [string, Query][] = [
      ['a word in half the jobs', { search: 'alpha' }],
      ['a word in half the jobs, status=failed', { search: 'alpha', statuses: ['failed'] }],
      ['a word in half the jobs, one user’s (subscriber)', { search: 'alpha', createdBy: 1 }],
      ['a word in half the jobs, a large user’s', { search: 'alpha', createdBy: 2 }],
      ['a word in a sixth, status=failed', { search: 'beta', statuses: ['failed'] }],
      ['a word in a sixth, type and two statuses', { search: 'beta', type: 't2', statuses: ['completed', 'failed'] }],
      ['a rare word', { search: 'gamma' }],
      ['a prefix of a few jobs (fewer than the known set)', { search: 'omega123' }],
      ['a prefix of a few jobs, one status', { search: 'omega123', statuses: ['pending'] }],
      ['a prefix of many words', { search: 'omega1' }],
      ['two words', { search: 'alpha beta' }],
      ['a word and a data filter', { search: 'delta3', dataFilters: [{ path: 'shop', value: 'shop-4' }] }],
      ['a data filter alone, with a status', { dataFilters: [{ path: 'shop', value: 'shop-2' }], statuses: ['pending'] }],
      ['a word nobody’s failed job has', { search: 'beta', statuses: ['failed'], createdBy: 1 }],
    ]

    it.each(QUERIES)('%s: every page in every sort, and the total', async (_label, query) => {
      if (skipped) return
      for (const sort of ['-createdAt', 'createdAt', '-priority', 'runAt'] as JobSort[]) {
        const want = expected(query, sort)
        for (const [offset, limit] of [[0, 10], [0, 100], [10, 25], [want.length - 3, 10]] as const) {
          if (offset < 0) continue
          const page = await store.list({ ...query, sort, limit, offset })
          expect(page.jobs.map((stored) => stored.state.postId), `${sort} offset ${offset} limit ${limit}`).toEqual(want.slice(offset, offset + limit))
        }
      }
      const total = await store.count(query, 10_001)
      const want = expected(query, '-createdAt').length
      if (total.complete) expect(total.n).toBe(want)
      else expect(total.n).toBeLessThanOrEqual(want), expect(total.n).toBeGreaterThan(0)
    })

    it('PostgreSQL: the creator is in the index row, from the create and from the triggers’ refresh', async () => {
      if (where !== 'postgres' || skipped) return
      const created = job(3 * 17) // createdBy 1
      const [postId] = await store.insert([created])
      const kvOf = async () =>
        ((await db.knex.raw('SELECT kv FROM job_search WHERE post_id = ?', [postId])) as { rows: { kv: string[] }[] }).rows[0]!.kv
      expect(await kvOf()).toContain('@u:1')
      // Another writer changes the data: the statement trigger rebuilds the row, creator included.
      await db.knex('post_meta').where({ post_id: postId, meta_key: 'data' }).update({ meta_value: JSON.stringify({ note: 'zebra' }) })
      expect(await kvOf()).toContain('@u:1')
      const find = async (createdBy: number) => (await store.list({ search: 'zebra', createdBy, sort: '-createdAt', limit: 10, offset: 0 })).jobs.map((stored) => stored.state.postId)
      expect(await find(1)).toEqual([postId])
      expect(await find(2)).toEqual([])
      await db.knex('posts').where({ id: postId }).delete()
    })

    it('PostgreSQL: a completion’s result words are in the index row as a full rebuild would make it', async () => {
      if (where !== 'postgres' || skipped) return
      const pg = store as PostgresJobStore
      const fresh = { ...job(7), name: 'Finishing okapi' }
      fresh.state = { ...fresh.state, type: 'finishing', status: 'pending', createdBy: null, owner: ownerScope(null, 'plans') }
      const [postId] = await pg.insert([fresh])
      const [claimed] = await pg.claim({ slots: [['finishing', 1]], limit: 1, now: T0 + 10_000_000, leaseMs: 60_000 })
      expect(claimed?.state.postId).toBe(postId)
      const result = JSON.stringify({ file: 'report-quokka.csv', rows: 12 })
      await pg.complete([{ postId: postId!, token: claimed!.state.attemptToken!, status: 'completed', result, clearError: false, now: T0 + 10_000_001 }])
      const lexemes = async () =>
        ((await db.knex.raw('SELECT tsvector_to_array(doc) AS words, kv FROM job_search WHERE post_id = ?', [postId])) as {
          rows: { words: string[]; kv: string[] }[]
        }).rows[0]!
      const written = await lexemes()
      expect(written.words).toEqual(expect.arrayContaining(['report', 'quokka', 'csv', '12', 'finishing', 'okapi']))
      await db.knex.raw('SELECT job_search_refresh(ARRAY[?]::integer[])', [postId])
      const rebuilt = await lexemes()
      expect([...written.words].sort()).toEqual([...rebuilt.words].sort())
      expect([...written.kv].sort()).toEqual([...rebuilt.kv].sort())
      expect((await pg.list({ search: 'quokka', sort: '-createdAt', limit: 10, offset: 0 })).jobs.map((stored) => stored.state.postId)).toEqual([postId])
      await db.knex('posts').where({ id: postId }).delete()
    })

    it('takes each plan somewhere: the filter-driven statement, and a budgeted (incomplete) total', async () => {
      if (where !== 'memory') return // statements of a file database run on the reader thread
      statements.length = 0
      await store.list({ search: 'beta', statuses: ['failed'], sort: '-createdAt', limit: 20, offset: 0 })
      expect(statements.some((sql) => sql.includes('+j.post_id IN'))).toBe(true)
      expect((await store.count({ search: 'alpha', createdBy: 2 }, 10_001)).complete).toBe(false)
      expect(await store.count({ search: 'alpha' }, 10_001)).toEqual({ n: JOBS / 2, complete: true })
    })
  })
}
