import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { systemClock } from '../../core/clock.js'
import type { Jobpost } from '../../core/createJobpost.js'
import { createDatabase, type Database } from '../../core/db/createDatabase.js'
import { MemoryRateBuckets, SqlRateBuckets, type RateBuckets } from '../../core/limits/RateBuckets.js'
import { migrateLatest } from '../../migrations/index.js'
import { freshPostgresDatabase, PASSWORD, startJobpost } from '../support/harness.js'
import { inParallel, tally } from './support/server.js'

/** Rate windows are aligned to multiples of their length: a day-long one is not crossed mid-test. */
const DAY_MS = 24 * 3600 * 1000

type Started = Jobpost & { url: string }
const pg = await freshPostgresDatabase('abuse_limits')

/** Waits, if needed, until the current minute has at least `ms` left (a rate window is a minute). */
async function awayFromMinuteBoundary(ms = 10_000) {
  const left = 60_000 - (Date.now() % 60_000)
  if (left < ms) await new Promise((resolve) => setTimeout(resolve, left + 50))
}

/** One conformance suite for the counters: each dialect, and the in-process fallback. */
describe.each([
  ['SQLite file', 'sqlite'],
  ['PostgreSQL', 'postgres'],
  ['memory', 'memory'],
] as const)('RateBuckets (%s): a take is atomic', (_label, kind) => {
  let db: Database | undefined
  let buckets: RateBuckets
  const skip = kind === 'postgres' && !pg

  beforeAll(async () => {
    if (skip) return
    if (kind === 'memory') {
      buckets = new MemoryRateBuckets({ clock: systemClock })
      return
    }
    db = createDatabase(kind === 'sqlite' ? { dialect: 'sqlite', filename: ':memory:' } : { dialect: 'postgres', connectionString: pg!.url })
    await migrateLatest(db.knex)
    buckets = new SqlRateBuckets({ knex: db.knex, clock: systemClock })
  })
  afterAll(() => db?.close())

  it.skipIf(skip)('300 concurrent takes against a limit of 50: exactly 50 allowed; a refund frees one; a reset frees all; a cost over the limit is refused', async () => {
    await awayFromMinuteBoundary(5000)
    const window = { limit: 50, windowMs: 60_000 }
    const key = `test:${kind}:${Date.now()}`
    const decisions = await Promise.all(Array.from({ length: 300 }, () => buckets.take(key, window)))
    expect(decisions.filter((d) => d.allowed)).toHaveLength(50)
    expect(decisions.filter((d) => !d.allowed).every((d) => d.retryAfterMs > 0 && d.retryAfterMs <= 60_000)).toBe(true)
    expect(new Set(decisions.filter((d) => d.allowed).map((d) => d.count))).toEqual(new Set(Array.from({ length: 50 }, (_, i) => i + 1)))
    await buckets.refund(key, window)
    expect((await buckets.take(key, window)).allowed).toBe(true)
    expect((await buckets.take(key, window)).allowed).toBe(false)
    await buckets.reset(key, window)
    expect((await buckets.take(key, window, 50)).allowed).toBe(true)
    expect((await buckets.take(`${key}:other`, window, 51)).allowed).toBe(false)
  })
})

describe.skipIf(!pg)('two instances on one PostgreSQL database share the limits', () => {
  let a: Started
  let b: Started
  let token: string

  beforeAll(async () => {
    const database = { dialect: 'postgres' as const, connectionString: pg!.url }
    const jobLimits = { user: { ratePerMinute: 100, maxPending: 100_000 }, plugin: { ratePerMinute: 60, maxPending: 100_000 } }
    a = await startJobpost({ database, jobLimits, loginRateLimit: 10, loginAddressRateLimit: 1000, loginRateWindowMs: DAY_MS })
    b = await startJobpost({ database, jobLimits, loginRateLimit: 10, loginAddressRateLimit: 1000, loginRateWindowMs: DAY_MS })
    await a.auth.createUser({ email: 'shared@example.com', password: PASSWORD, roles: ['subscriber'] })
    await a.auth.createUser({ email: 'guessed@example.com', password: PASSWORD, roles: ['subscriber'] })
    token = (await request(a.url).post('/api/v1/auth/login').send({ email: 'shared@example.com', password: PASSWORD }).expect(200)).body.data.token
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await pg?.drop()
  })

  it('a user sending 200 creates, alternating instances, 40 at a time: exactly 100 created (the rate is one counter)', async () => {
    await awayFromMinuteBoundary()
    const results = await inParallel(200, 40, (i) =>
      request((i % 2 ? a : b).url).post('/api/v1/jobs').set('authorization', `Bearer ${token}`).send({ name: `shared ${i}`, type: 'shared' }),
    )
    expect(tally(results.map((r) => r.status))).toEqual({ 201: 100, 429: 100 })
    expect(results.filter((r) => r.status === 429).every((r) => r.body.error.code === 'RATE_LIMITED')).toBe(true)
    const listed = await request(b.url).get('/api/v1/jobs?limit=1').set('authorization', `Bearer ${token}`).expect(200)
    expect(listed.body.meta.total).toBe(100)
  })

  it('a plugin enqueueing on both instances: exactly its 60 a minute', async () => {
    await awayFromMinuteBoundary()
    const outcomes = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).pluginHooks('shared-plugin').enqueueJob({ type: 'shared-plugin-work' })),
    )
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(60)
    expect(outcomes.filter((o) => o.status === 'rejected').every((o) => (o as PromiseRejectedResult).reason.code === 'RATE_LIMITED')).toBe(true)
  })

  it('40 concurrent wrong passwords for one account, alternating instances: exactly 10 checked', async () => {
    const results = await inParallel(40, 40, (i) =>
      request((i % 2 ? a : b).url).post('/api/v1/auth/login').send({ email: 'guessed@example.com', password: `wrong ${i}` }),
    )
    expect(tally(results.map((r) => r.status))).toEqual({ 401: 10, 429: 30 })
  })
})
