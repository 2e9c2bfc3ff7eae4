import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../core/clock.js'
import type { Jobpost } from '../core/createJobpost.js'
import type { Job } from '../core/contract.js'
import { RARE_MATCHES } from '../core/store/jobs/search/sqliteSearch.js'
import { SEARCH_MAX_LENGTH, SEARCH_MAX_WORDS } from '../core/store/jobs/search/query.js'
import { freshPostgresDatabase, startJobpost, userWithRole, type TestUser } from './support/harness.js'

/**
 * Full-text search and data.<path> filters (issue 17, migration 008) on both dialects, through
 * the REST route and the registry: every field, prefixes, visibility, filters with cursor paging,
 * the index kept in step with every write, and hostile input.
 */
function searchSuite(label: string, open: () => Promise<{ jobpost: Jobpost; clock: ManualClock; cleanup(): Promise<void> } | null>) {
  describe(`job search on ${label}`, () => {
    let jobpost: Jobpost
    let clock: ManualClock
    let cleanup = async () => {}
    let skip = false
    let admin: TestUser
    let alice: TestUser
    let bob: TestUser

    beforeAll(async () => {
      const opened = await open()
      if (!opened) {
        skip = true
        return
      }
      ;({ jobpost, clock } = opened)
      cleanup = opened.cleanup
      ;[admin, alice, bob] = await Promise.all([
        userWithRole(jobpost, 'administrator'),
        userWithRole(jobpost, 'subscriber'),
        userWithRole(jobpost, 'subscriber'),
      ])
    }, 60_000)
    afterAll(async () => {
      await jobpost?.close()
      await cleanup()
    })

    const get = (user: TestUser, query: Record<string, string> | string) =>
      request(jobpost.app)
        .get(`/api/v1/jobs?${typeof query === 'string' ? query : new URLSearchParams(query).toString()}`)
        .set('authorization', `Bearer ${user.token}`)
    const found = async (user: TestUser, query: Record<string, string> | string): Promise<string[]> => {
      const res = await get(user, query)
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      return (res.body.data as Job[]).map((job) => job.jobId)
    }
    const create = async (input: Record<string, unknown>) =>
      (await jobpost.jobs.createJobs([{ name: 'Job', type: 'search-test', ...input } as never], { queue: true }))[0]!

    it('finds a job by its name, description, data values, result and error message', async (ctx) => {
      if (skip) return ctx.skip()
      const named = await create({ name: 'Zanzibar import' })
      const described = await create({ description: 'Refresh the quokka catalogue' })
      const withData = await create({ data: { shop: 'acme-store', order: { id: 1042, lines: [{ sku: 'WOMBAT-77' }] }, flag: true } })
      const withResult = await create({})
      await jobpost.jobs.start(withResult.jobId)
      await jobpost.jobs.complete(withResult.jobId, { file: 'export-narwhal.csv', rows: 3 })
      const withError = await create({})
      await jobpost.jobs.start(withError.jobId)
      await jobpost.jobs.fail(withError.jobId, 'Gateway platypus timed out')

      expect(await found(admin, { search: 'zanzibar' })).toEqual([named.jobId])
      expect(await found(admin, { search: 'quokka' })).toEqual([described.jobId])
      expect(await found(admin, { search: 'acme-store' })).toEqual([withData.jobId])
      expect(await found(admin, { search: 'wombat' })).toEqual([withData.jobId]) // inside an array
      expect(await found(admin, { search: '1042' })).toEqual([withData.jobId]) // a number value
      expect(await found(admin, { search: 'narwhal' })).toEqual([withResult.jobId])
      expect(await found(admin, { search: 'platypus' })).toEqual([withError.jobId])
      // Each job of the page says where it matched, with the ranges to highlight.
      const where = await get(admin, { search: 'wombat acme' })
      expect(where.body.data[0].matches).toEqual([
        { field: 'data', path: 'shop', text: 'acme-store', ranges: [[0, 4]] },
        { field: 'data', path: 'order.lines[].sku', text: 'WOMBAT-77', ranges: [[0, 6]] },
      ])
      const byFilter = await get(admin, { 'data.order.id': '1042' })
      expect(byFilter.body.data[0].matches).toEqual([{ field: 'data', path: 'order.id', text: '1042', ranges: [[0, 4]] }])
      expect((await get(admin, { search: 'zanzibar' })).body.data[0].matches).toEqual([{ field: 'name', text: 'Zanzibar import', ranges: [[0, 8]] }])
      expect((await get(admin, {})).body.data[0].matches).toBeUndefined()
      // Keys are not values.
      expect(await found(admin, { search: 'shop' })).toEqual([])
      expect(await found(admin, { search: 'sku' })).toEqual([])
    })

    it('matches whole words and prefixes, case-insensitively, and needs every word', async (ctx) => {
      if (skip) return ctx.skip()
      const a = await create({ name: 'Sync Kangaroo orders', data: { region: 'Tasmania' } })
      const b = await create({ name: 'Sync Kangaroo invoices' })
      expect(new Set(await found(admin, { search: 'kangaroo' }))).toEqual(new Set([a.jobId, b.jobId]))
      expect(new Set(await found(admin, { search: 'KANGA' }))).toEqual(new Set([a.jobId, b.jobId]))
      expect(await found(admin, { search: 'kangaroo tasman' })).toEqual([a.jobId])
      expect(await found(admin, { search: 'kangaroo invoice' })).toEqual([b.jobId])
      expect(await found(admin, { search: 'kangaroo elephant' })).toEqual([])
      // A prefix of a word, not a part inside it.
      expect(await found(admin, { search: 'angaroo' })).toEqual([])
    })

    it('never shows a subscriber another user’s job, whatever matches its payload', async (ctx) => {
      if (skip) return ctx.skip()
      const secret = await create({ name: 'Private', createdBy: alice.id, data: { token: 'aardvarksecret', customer: { id: 'cust-991' } } })
      const own = await create({ name: 'Mine', createdBy: bob.id, data: { note: 'aardvarksecret too' } })
      expect(await found(alice, { search: 'aardvarksecret' })).toEqual([secret.jobId])
      expect(await found(bob, { search: 'aardvarksecret' })).toEqual([own.jobId])
      expect(await found(bob, { search: 'aardvark' })).toEqual([own.jobId])
      expect(await found(bob, { 'data.customer.id': 'cust-991' })).toEqual([])
      expect(await found(bob, { 'data.token': 'aardvarksecret' })).toEqual([])
      const res = await get(bob, { search: 'aardvarksecret' })
      expect(res.body.meta.total).toBe(1)
      expect(new Set(await found(admin, { search: 'aardvarksecret' }))).toEqual(new Set([secret.jobId, own.jobId]))
      expect(await found(admin, { 'data.customer.id': 'cust-991' })).toEqual([secret.jobId])
    })

    it('filters by data.<path>: text or number, whole values only, up to three, with the other filters', async (ctx) => {
      if (skip) return ctx.skip()
      const long = 'x'.repeat(40)
      const n = await create({ type: 'dp-a', data: { order: { id: 555001, ref: '555002' }, shop: 'emu-store', price: 12.5 } })
      const s = await create({ type: 'dp-b', data: { order: { id: '555001' }, shop: 'emu-store-2', note: `${long}-one` } })
      const t = await create({ type: 'dp-a', data: { shop: 'emu', note: `${long}-two`, deep: { a: { b: { c: 'koala' } } } } })
      expect(new Set(await found(admin, { 'data.order.id': '555001' }))).toEqual(new Set([n.jobId, s.jobId]))
      expect(await found(admin, { 'data.order.ref': '555002' })).toEqual([n.jobId])
      expect(await found(admin, { 'data.price': '12.50' })).toEqual([n.jobId])
      expect(await found(admin, { 'data.shop': 'emu-store' })).toEqual([n.jobId])
      expect(await found(admin, { 'data.shop': 'emu' })).toEqual([t.jobId])
      // Values longer than the index token: the whole value is compared.
      expect(await found(admin, { 'data.note': `${long}-two` })).toEqual([t.jobId])
      expect(await found(admin, { 'data.note': long })).toEqual([])
      expect(await found(admin, { 'data.deep.a.b.c': 'koala' })).toEqual([t.jobId])
      expect(await found(admin, { 'data.deep.a': 'koala' })).toEqual([])
      // Combined: with each other, with type and status, with search.
      expect(await found(admin, { 'data.order.id': '555001', type: 'dp-b' })).toEqual([s.jobId])
      expect(await found(admin, { 'data.order.id': '555001', 'data.shop': 'emu-store' })).toEqual([n.jobId])
      expect(await found(admin, { 'data.order.id': '555001', search: 'emu' })).toHaveLength(2)
      expect(await found(admin, { 'data.order.id': '555001', status: 'completed' })).toEqual([])
      const res = await get(admin, { 'data.order.id': '555001' })
      expect(res.body.meta).toMatchObject({ total: 2 })
    })

    it('combines search with status, type and source filters, sort, offset and cursor paging', async (ctx) => {
      if (skip) return ctx.skip()
      const jobs = await jobpost.jobs.createJobs(
        Array.from({ length: 25 }, (_, i) => ({ name: `Paging dingo ${i}`, type: i % 2 ? 'pg-odd' : 'pg-even', priority: i % 5, data: { i } })) as never,
        { queue: true },
      )
      for (const job of jobs.slice(0, 5)) {
        await jobpost.jobs.start(job.jobId)
        await jobpost.jobs.complete(job.jobId, {})
      }
      expect(await found(admin, { search: 'dingo', status: 'completed' })).toHaveLength(5)
      expect(await found(admin, { search: 'dingo', type: 'pg-odd' })).toHaveLength(12)
      expect(await found(admin, { search: 'dingo', type: 'pg-odd', status: 'completed' })).toHaveLength(2)
      expect(await found(admin, { search: 'dingo', source: 'nope' })).toHaveLength(0)
      const first = await get(admin, { search: 'dingo', limit: '10', sort: '-priority' })
      expect(first.body.meta.total).toBe(25)
      const seen = (first.body.data as Job[]).map((job) => job.jobId)
      let cursor = first.body.meta.nextCursor as string | undefined
      while (cursor) {
        const page = await get(admin, { search: 'dingo', limit: '10', sort: '-priority', cursor })
        expect(page.status).toBe(200)
        seen.push(...(page.body.data as Job[]).map((job) => job.jobId))
        cursor = page.body.meta.nextCursor
      }
      expect(seen).toHaveLength(25)
      expect(new Set(seen).size).toBe(25)
      const byId = new Map(jobs.map((job) => [job.jobId, job.priority]))
      const priorities = seen.map((id) => byId.get(id)!)
      expect(priorities).toEqual([...priorities].sort((x, y) => y - x))
      const offsetPage = await found(admin, { search: 'dingo', limit: '10', offset: '10', sort: '-priority' })
      expect(offsetPage).toEqual(seen.slice(10, 20))
    })

    it(`pages a word shared by more than ${RARE_MATCHES} jobs, newest first, with a total`, async (ctx) => {
      if (skip) return ctx.skip()
      const count = RARE_MATCHES + 300
      const inputs = Array.from({ length: count }, (_, i) => ({ name: `Common wallaby ${i}`, type: i % 10 === 0 ? 'wb-rare' : 'wb', data: { i } }))
      for (let i = 0; i < count; i += 1000) {
        clock.advance(1)
        await jobpost.jobs.createJobs(inputs.slice(i, i + 1000) as never, { queue: true })
      }
      const first = await get(admin, { search: 'wallaby', limit: '50' })
      expect(first.body.meta.total).toBe(count)
      const names = (first.body.data as Job[]).map((job) => Number(job.name.split(' ')[2]))
      expect(names).toEqual(Array.from({ length: 50 }, (_, i) => count - 1 - i))
      const second = await get(admin, { search: 'wallaby', limit: '50', cursor: first.body.meta.nextCursor })
      expect((second.body.data as Job[]).map((job) => Number(job.name.split(' ')[2]))).toEqual(Array.from({ length: 50 }, (_, i) => count - 51 - i))
      // Oldest first: rows older than the newest matches are looked up in the index by range.
      const oldest = await get(admin, { search: 'wallaby', limit: '10', sort: 'createdAt' })
      expect((oldest.body.data as Job[]).map((job) => Number(job.name.split(' ')[2]))).toEqual(Array.from({ length: 10 }, (_, i) => i))
      // Rare within the filter: the walk keeps going until the page is full.
      const rare = await get(admin, { search: 'wallaby', type: 'wb-rare', limit: '20' })
      expect(rare.body.meta.total).toBe(count / 10)
      expect((rare.body.data as Job[]).every((job) => job.type === 'wb-rare')).toBe(true)
      expect(rare.body.data).toHaveLength(20)
      const noneHere = await get(admin, { search: 'wallaby', type: 'search-test' })
      expect(noneHere.body.data).toEqual([])
      // Bulk "select every match" sees the same set.
      expect((await jobpost.jobs.getJobs({ search: `wallaby ${count - 1}`, limit: 5 })).jobs.map((job) => job.name)).toEqual([`Common wallaby ${count - 1}`])
    }, 60_000)

    it('keeps the index in step with updates, retries, deletes and cleanup', async (ctx) => {
      if (skip) return ctx.skip()
      const job = await create({ name: 'Lifecycle ibis', data: { stage: 'first' } })
      await jobpost.jobs.start(job.jobId)
      await jobpost.jobs.fail(job.jobId, 'Broken pelican adapter')
      expect(await found(admin, { search: 'pelican' })).toEqual([job.jobId])
      await jobpost.jobs.retry(job.jobId)
      expect(await found(admin, { search: 'pelican' })).toEqual([])
      expect(await found(admin, { search: 'ibis' })).toEqual([job.jobId])
      await jobpost.jobs.start(job.jobId)
      await jobpost.jobs.complete(job.jobId, { summary: 'flamingo done' })
      expect(await found(admin, { search: 'flamingo' })).toEqual([job.jobId])
      expect(await found(admin, { search: 'ibis flamingo first' })).toEqual([job.jobId])
      // A change of a job's data (through the store, as RegisterJobs writes it) moves its index row.
      expect(await jobpost.jobs.updateJobMeta(job.jobId, { data: JSON.stringify({ stage: 'second' }) }, { statuses: ['completed'] })).not.toBeNull()
      expect(await found(admin, { search: 'first' })).not.toContain(job.jobId)
      expect(await found(admin, { 'data.stage': 'second' })).toEqual([job.jobId])
      await request(jobpost.app).delete(`/api/v1/jobs/${job.jobId}`).set('authorization', `Bearer ${admin.token}`).expect(200)
      expect(await found(admin, { search: 'flamingo' })).toEqual([])
      expect(await found(admin, { 'data.stage': 'second' })).toEqual([])

      const old = await create({ name: 'Old toucan', data: { stage: 'toucan' } })
      await jobpost.jobs.start(old.jobId)
      await jobpost.jobs.complete(old.jobId, { note: 'toucan result' })
      const ids = async () => (await jobpost.jobs.getJobs({ search: 'toucan' })).jobs.map((one) => one.jobId)
      expect(await ids()).toEqual([old.jobId])
      clock.advance(31 * 24 * 3600_000)
      expect(await jobpost.jobs.cleanupOldJobs(30)).toBeGreaterThanOrEqual(1)
      clock.advance(-31 * 24 * 3600_000) // the users' tokens stay valid
      expect(await ids()).toEqual([])
      // No index row outlives its job.
      const orphans =
        jobpost.db.dialect === 'sqlite'
          ? await jobpost.db.knex.raw(`SELECT COUNT(*) AS n FROM job_search WHERE job_search MATCH '{body}: "toucan"'`)
          : (await jobpost.db.knex.raw(`SELECT COUNT(*) AS n FROM job_search WHERE doc @@ to_tsquery('simple', 'toucan')`)).rows
      expect(Number(orphans[0].n)).toBe(0)
    })

    it('takes operators, quotes, NUL and other syntax as text; a query over the limits is a clear 400', async (ctx) => {
      if (skip) return ctx.skip()
      const job = await create({ name: 'NEAR and NOT or', description: 'col:weird "quoted" (paren) ^caret' })
      for (const search of ['"', '""', "'", 'AND', 'OR', 'NOT', 'NEAR(a b)', '*', 'foo*', '(', ')', '^x', 'col:x', '{body}:x', '-', ':*', '&|!', "'; DROP TABLE posts; --", 'a\u0000b', '\u0000', '%', '_', '\\']) {
        const res = await get(admin, { search })
        expect(res.status, `search ${JSON.stringify(search)}: ${JSON.stringify(res.body)}`).toBe(200)
      }
      expect(await found(admin, { search: 'near not' })).toEqual([job.jobId])
      expect(await found(admin, { search: '"quoted"' })).toEqual([job.jobId])
      expect(await found(admin, { search: 'col:weird' })).toEqual([job.jobId])
      expect(await found(admin, { search: '(paren) AND ^caret*' })).toEqual([job.jobId])
      expect(await found(admin, { search: '"' })).toEqual([])

      const tooLong = await get(admin, { search: 'a'.repeat(10 * 1024) })
      expect(tooLong.status).toBe(400)
      expect(tooLong.body.error.code).toBe('VALIDATION_FAILED')
      expect(tooLong.body.error.message).toContain(String(SEARCH_MAX_LENGTH))
      const tooMany = await get(admin, { search: Array.from({ length: SEARCH_MAX_WORDS + 1 }, (_, i) => `w${i}`).join(' ') })
      expect(tooMany.status).toBe(400)
      expect(tooMany.body.error.message).toContain('words')
      expect((await get(admin, 'search=a&search=b')).status).toBe(400)
      for (const bad of ['data.a..b=1', 'data.=1', 'data.a-b=1', 'data.a%20b=1', 'data.a.=1', 'data.%22a%22=1', `data.${'a'.repeat(300)}=1`]) {
        const res = await get(admin, bad)
        expect(res.status, bad).toBe(400)
        expect(res.body.error.code).toBe('VALIDATION_FAILED')
      }
      expect((await get(admin, 'data.a=1&data.b=2&data.c=3')).status).toBe(200)
      const four = await get(admin, 'data.a=1&data.b=2&data.c=3&data.d=4')
      expect(four.status).toBe(400)
      expect(four.body.error.message).toContain('3')
      expect((await get(admin, 'data.a=1&data.a=2')).status).toBe(400)
      expect((await get(admin, { 'data.a': 'x'.repeat(2000) })).status).toBe(400)
      expect((await get(admin, { 'data.a': '"\u0000\' OR 1=1 --' })).status).toBe(200)
    })
  })
}

searchSuite('SQLite', async () => {
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00.000Z'))
  const jobpost = await startJobpost({}, { clock, listen: false })
  return { jobpost, clock, cleanup: async () => {} }
})

// A file database: searches run on the reader thread (search/sqliteReader.ts), off the event loop.
searchSuite('SQLite file (reader thread)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-search-'))
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00.000Z'))
  const jobpost = await startJobpost({ database: { dialect: 'sqlite', filename: path.join(dir, 'search.sqlite') } }, { clock, listen: false })
  return { jobpost, clock, cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) }
})

searchSuite('PostgreSQL', async () => {
  const pg = await freshPostgresDatabase('search')
  if (!pg) return null
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00.000Z'))
  const jobpost = await startJobpost({ database: { dialect: 'postgres', connectionString: pg.url } }, { clock, listen: false })
  return { jobpost, clock, cleanup: () => pg.drop() }
})
