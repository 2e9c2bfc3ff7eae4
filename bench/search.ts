/**
 * Search at scale (issue 17): `npx tsx bench/search.ts`.
 *
 * 1. What the index costs creates: jobs created one per call (group-committed as the job store
 *    does for concurrent callers) on a fresh database with the search triggers and on one without
 *    them, in alternating rounds; the overhead is 1 − with / without (medians).
 * 2. SEARCH_BENCH_JOBS jobs (default 1,000,000) with varied payloads, seeded through the job store
 *    in chunks of 5,000, in every status, over 20 users.
 * 3. Searches through RegisterJobs.getJobs (page and total, as GET /api/v1/jobs runs them): a word
 *    of ≤ 100 jobs, a data.<path> filter on such a value, common words (first page, totalCapped),
 *    prefixes, with filters, a subscriber's view, the next page by cursor. Each runs REPEAT times;
 *    median and max ms, and the longest the event loop was held meanwhile (`monitorEventLoopDelay`).
 *
 * Env: SEARCH_BENCH_JOBS, SEARCH_BENCH_CREATES (per round, default 20,000), SEARCH_BENCH_REPEAT (15),
 * SEARCH_BENCH_SKIP_CREATES=1 / SEARCH_BENCH_ONLY_CREATES=1 (one phase only),
 * SEARCH_BENCH_DB (SQLite file, default data/bench-search.sqlite; kept, reused when it already
 * holds the jobs) or DATABASE_URL=postgres://… (a database of its own, jobpost_bench_search, kept
 * and reused the same way; drop it to seed again).
 */
import fs from 'node:fs'
import path_ from 'node:path'
import { pathToFileURL } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import pg from 'pg'
import { loadConfig, type DatabaseTarget, type JobpostConfig } from '../core/config.js'
import type { JobListFilters, JobStatus } from '../core/contract.js'
import { createJobpost, type Jobpost } from '../core/createJobpost.js'
import type { NewJob } from '../core/store/jobs/JobStore.js'
import { seedJob } from './seed.js'

const JOBS = Number(process.env.SEARCH_BENCH_JOBS ?? 1_000_000)
const CREATES = Number(process.env.SEARCH_BENCH_CREATES ?? 20_000)
const REPEAT = Number(process.env.SEARCH_BENCH_REPEAT ?? 15)
const POSTGRES = process.env.DATABASE_URL?.startsWith('postgres') ? process.env.DATABASE_URL : undefined
const SQLITE_FILE = process.env.SEARCH_BENCH_DB ?? path_.resolve('data', 'bench-search.sqlite')
const USERS = 20

// ------------------------------------------------------------------------------------------------
// Varied payloads

const NAMES = ['Import products', 'Sync orders', 'Send invoice email', 'Resize images', 'Export sales report', 'Rebuild search index']
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'vo', 'zi', 'be', 'do', 'fu', 'gi', 'ha', 'jo', 'pe', 'si']
/** 4,096 made-up words; a note draws from them skewed (a few common, most rare). */
const VOCABULARY = Array.from({ length: 4096 }, (_, i) => SYLLABLES[i % 16]! + SYLLABLES[(i >> 4) % 16]! + SYLLABLES[(i >> 8) % 16]!)
const COUNTRIES = ['DE', 'FR', 'NL', 'US', 'GB', 'ES', 'IT', 'PL']
const CURRENCIES = ['EUR', 'USD', 'GBP']
const STATUSES: [JobStatus, number][] = [
  ['completed', 80], ['failed', 6], ['completed_with_errors', 2], ['cancelled', 3], ['pending', 6], ['running', 1], ['paused', 2],
]

function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function statusOf(r: number): JobStatus {
  let n = r * 100
  for (const [status, share] of STATUSES) {
    if (n < share) return status
    n -= share
  }
  return 'completed'
}

/** Job i: its name, description, data, result and error vary; `batch<i % 10,000>` is on 100 of 1M. */
export function benchJob(i: number, at: number): NewJob {
  const r = random(i + 1)
  const status = statusOf(r())
  const createdBy = i % 3 === 0 ? null : 1 + (i % USERS)
  const job = seedJob({ status, at: new Date(at).toISOString(), type: `bench-${i % 5}`, createdBy })
  const word = () => VOCABULARY[Math.floor(VOCABULARY.length * r() ** 3)]!
  job.name = `${NAMES[i % NAMES.length]} #${i}`
  const meta: Record<string, string> = {
    data: JSON.stringify({
      shop: `shop-${i % 5000}`,
      batch: `batch${i % 10_000}`,
      ref: `ref${i}`,
      order: { id: 1_000_000 + i, total: Math.round(r() * 100_000) / 100, currency: CURRENCIES[i % 3] },
      customer: { email: `customer${i % 250_000}@example.com`, country: COUNTRIES[i % COUNTRIES.length] },
      items: Array.from({ length: 1 + (i % 3) }, (_, k) => ({ sku: `SKU-${(i * 7 + k) % 100_000}`, qty: 1 + k })),
      note: Array.from({ length: 3 + (i % 6) }, word).join(' '),
    }),
  }
  if (i % 4 === 0) meta.description = `Nightly run for ${word()} ${word()}`
  if (status === 'completed' || status === 'completed_with_errors') meta.result = JSON.stringify({ imported: i % 977, file: `export-${i}.csv` })
  if (status === 'failed') meta.error_message = `Gateway timeout from payments-${i % 50} after ${1 + (i % 30)} s`
  job.meta = meta
  return job
}

// ------------------------------------------------------------------------------------------------

/** No worker, no retention sweep, creation limits off (an operator loading a million jobs sets them so). */
function benchSearchConfig(database: DatabaseTarget): JobpostConfig {
  const env = { LOG_LEVEL: 'silent', JOB_RETENTION_DAYS: '0', JOB_CREATE_RATE_PER_MINUTE: '0', MAX_PENDING_PER_OWNER: '0' }
  return { ...loadConfig(env), database, activePlugins: [], port: 0, runWorker: false }
}

async function openJobpost(target: 'bench' | 'fresh'): Promise<Jobpost> {
  if (POSTGRES) {
    const name = target === 'bench' ? 'jobpost_bench_search' : `jobpost_bench_search_create_${process.pid}`
    const admin = new pg.Client({ connectionString: POSTGRES })
    await admin.connect()
    // The bench database is kept and reused when it holds the jobs (as the SQLite file is).
    const exists = (await admin.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [name])).rowCount === 1
    if (target === 'fresh' || !exists) {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.query(`CREATE DATABASE ${name}`)
    }
    await admin.end()
    const url = POSTGRES.replace(/\/[^/]*$/, `/${name}`)
    return createJobpost(benchSearchConfig({ dialect: 'postgres', connectionString: url }))
  }
  const file = target === 'bench' ? SQLITE_FILE : path_.join(path_.dirname(SQLITE_FILE), `bench-search-create-${process.pid}.sqlite`)
  if (target === 'fresh') for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true })
  return createJobpost(benchSearchConfig({ dialect: 'sqlite', filename: file }))
}

/** The owners of the seeded jobs (created_by references users). */
async function addUsers(jobpost: Jobpost) {
  for (let u = 1; u <= USERS; u++) {
    await jobpost.db.knex('users').insert({ id: u, email: `bench-${u}@example.com`, display_name: `Bench ${u}`, password_hash: 'x', created_at: new Date().toISOString() })
  }
}

/**
 * The baseline without the index: its tables become views that drop every write (INSTEAD OF
 * triggers), and the triggers that keep them go. On SQLite the job store does not build the
 * rows either (a bare create); on PostgreSQL it still builds each job's words in JavaScript.
 */
async function withoutSearchIndex(jobpost: Jobpost) {
  const knex = jobpost.db.knex
  if (jobpost.db.dialect === 'sqlite') {
    await knex.raw('DROP TRIGGER job_search_post_delete')
    await knex.raw('DROP TABLE job_search')
    await knex.raw(`CREATE VIEW job_search AS SELECT 0 AS rowid, '' AS body, '' AS kv, '' AS job_search, 0 AS rank WHERE 0`)
    await knex.raw('CREATE TRIGGER job_search_off_insert INSTEAD OF INSERT ON job_search BEGIN SELECT 1; END')
    await knex.raw('CREATE TRIGGER job_search_off_delete INSTEAD OF DELETE ON job_search BEGIN SELECT 1; END')
    await knex.raw('DROP TABLE job_search_pending')
    await knex.raw(`CREATE VIEW job_search_pending AS SELECT 0 AS post_id, '' AS body, '' AS kv, 0 AS replaces WHERE 0`)
    // Nor are the rows built: the store's held index writes are dropped as they come (bench only).
    const held = (jobpost.jobStore as unknown as { pendingIndex: { insert(): void; change(): void } }).pendingIndex
    held.insert = held.change = () => {}
  } else {
    for (const table of ['posts', 'post_meta']) {
      for (const event of ['insert', 'update', 'delete']) await knex.raw(`DROP TRIGGER job_search_${table}_${event} ON ${table}`)
    }
    // The create statement's index rows go nowhere (their words are still built in JS and cast).
    await knex.raw('DROP TABLE job_search')
    await knex.raw(`CREATE VIEW job_search AS SELECT 0 AS post_id, ''::tsvector AS doc, '{}'::text[] AS kv, now() AS stmt WHERE false`)
    await knex.raw(`CREATE FUNCTION job_search_off() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN RETURN NULL; END $fn$`)
    await knex.raw('CREATE TRIGGER job_search_off INSTEAD OF INSERT ON job_search FOR EACH ROW EXECUTE FUNCTION job_search_off()')
  }
}

type CreatePath = 'api' | 'store'

/**
 * Jobs per second created:
 * - `api`: through the plugin API, as jobs arrive (`hooks.createJob`, sequential awaits, as the
 *   queue bench measures it; or `hooks.enqueueJobs`, `bulk` per call) with creation limits off;
 * - `store`: through the job store alone (one per call with WAVE calls in flight, group-committed;
 *   or `bulk` per call): the pessimistic figure, storage only.
 * Payloads are built before the clock starts.
 */
async function createRate(jobpost: Jobpost, path: CreatePath, count: number, offset: number, bulk = 0): Promise<number> {
  const WAVE = 200
  const jobs = Array.from({ length: count }, (_, k) => benchJob(offset + k, Date.now()))
  const started = performance.now()
  if (path === 'api') {
    const hooks = jobpost.pluginHooks('bench')
    const options = jobs.map((job) => ({
      name: job.name,
      type: job.state.type,
      description: job.meta.description,
      data: JSON.parse(job.meta.data!) as Record<string, unknown>,
    }))
    if (bulk) for (let i = 0; i < count; i += bulk) await hooks.enqueueJobs(options.slice(i, i + bulk))
    else for (const option of options) await hooks.createJob(option)
  } else if (bulk) {
    for (let i = 0; i < count; i += bulk) await jobpost.jobStore.insert(jobs.slice(i, i + bulk))
  } else {
    for (let i = 0; i < count; i += WAVE) await Promise.all(jobs.slice(i, i + WAVE).map((job) => jobpost.jobStore.insert([job])))
  }
  return count / ((performance.now() - started) / 1000)
}

interface CreateFigures {
  withIndex: number
  without: number
  overhead: number
}

async function measureCreates(path: CreatePath, bulk: number): Promise<CreateFigures> {
  const rounds: { withIndex: number[]; without: number[] } = { withIndex: [], without: [] }
  const count = path === 'api' && !bulk ? Math.min(CREATES, 5000) : CREATES
  const label = `${path === 'api' ? (bulk ? `enqueueJobs ×${bulk}` : 'createJob') : bulk ? `store ×${bulk}` : 'store, one per call'}`
  for (let round = 0; round < 3; round++) {
    for (const indexed of round % 2 ? [false, true] : [true, false]) {
      const jobpost = await openJobpost('fresh')
      await addUsers(jobpost)
      if (!indexed) await withoutSearchIndex(jobpost)
      await createRate(jobpost, path, 1000, 0, bulk) // warm-up: statements prepared, pages in the cache
      const rate = await createRate(jobpost, path, count, 10_000, bulk)
      ;(indexed ? rounds.withIndex : rounds.without).push(rate)
      console.log(`  ${label} ${indexed ? 'with' : 'without'} the index, round ${round + 1}: ${Math.round(rate)} jobs/s`)
      await jobpost.close()
    }
  }
  // The rounds' fresh database goes too.
  if (POSTGRES) {
    const admin = new pg.Client({ connectionString: POSTGRES })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS jobpost_bench_search_create_${process.pid} WITH (FORCE)`)
    await admin.end()
  } else {
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(path_.join(path_.dirname(SQLITE_FILE), `bench-search-create-${process.pid}.sqlite${suffix}`), { force: true })
  }
  const withIndex = median(rounds.withIndex)
  const without = median(rounds.without)
  console.log(`  → ${label}: ${Math.round(withIndex)} vs ${Math.round(without)} jobs/s: the index costs ${((1 - withIndex / without) * 100).toFixed(1)}%`)
  return { withIndex, without, overhead: 1 - withIndex / without }
}

async function seed(jobpost: Jobpost): Promise<number> {
  const have = Number((await jobpost.db.knex('job_state').count({ n: '*' }))[0]!.n)
  if (have >= JOBS) {
    console.log(`  reusing ${have} jobs in ${POSTGRES ? 'PostgreSQL' : SQLITE_FILE}`)
    return 0
  }
  if (have > 0) throw new Error(`${SQLITE_FILE} holds ${have} jobs, fewer than SEARCH_BENCH_JOBS; remove it first.`)
  await addUsers(jobpost)
  const start = Date.now() - JOBS * 1000
  const CHUNK = 5000
  const started = performance.now()
  for (let i = 0; i < JOBS; i += CHUNK) {
    await jobpost.jobStore.insert(Array.from({ length: Math.min(CHUNK, JOBS - i) }, (_, k) => benchJob(i + k, start + (i + k) * 1000)))
    if ((i / CHUNK) % 40 === 0) console.log(`  seeded ${i + CHUNK} jobs, ${Math.round((i + CHUNK) / ((performance.now() - started) / 1000))}/s`)
  }
  if (POSTGRES) await jobpost.db.knex.raw('VACUUM ANALYZE')
  else await jobpost.db.knex.raw('ANALYZE')
  return JOBS / ((performance.now() - started) / 1000)
}

function printCreates(dialect: string, rows: [string, CreateFigures][]) {
  if (!rows.length) return
  console.log(`\n| ${dialect}, creates | with the index, jobs/s | without, jobs/s | cost of the index |`)
  console.log('|---|---|---|---|')
  for (const [label, f] of rows) {
    console.log(`| ${label} | ${Math.round(f.withIndex).toLocaleString('en')} | ${Math.round(f.without).toLocaleString('en')} | ${(f.overhead * 100).toFixed(0)} % |`)
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

interface Row {
  what: string
  matches: string
  medianMs: number
  maxMs: number
  loopMaxMs: number
}

async function timeQuery(jobpost: Jobpost, what: string, filters: JobListFilters, next?: boolean): Promise<Row> {
  const times: number[] = []
  let last: Awaited<ReturnType<Jobpost['jobs']['getJobs']>> | undefined
  const loop = monitorEventLoopDelay({ resolution: 1 })
  // Once to warm the statement cache and the pages it reads, then measured.
  const first = await jobpost.jobs.getJobs(filters)
  const query = next && first.nextCursor ? { ...filters, cursor: first.nextCursor } : filters
  loop.enable()
  for (let i = 0; i < REPEAT; i++) {
    const started = performance.now()
    last = await jobpost.jobs.getJobs(query)
    times.push(performance.now() - started)
  }
  loop.disable()
  const matches = `${last!.total}${last!.totalCapped ? '+ (capped)' : ''}, page ${last!.jobs.length}`
  const row = { what, matches, medianMs: median(times), maxMs: Math.max(...times), loopMaxMs: loop.max / 1e6 }
  console.log(`  ${what}: ${matches}; median ${row.medianMs.toFixed(1)} ms, max ${row.maxMs.toFixed(1)} ms, event loop held ≤ ${row.loopMaxMs.toFixed(1)} ms`)
  return row
}

async function main() {
  const dialect = POSTGRES ? 'PostgreSQL' : 'SQLite'
  console.log(`Search bench on ${dialect}: ${JOBS} jobs`)
  const onlyCreates = process.env.SEARCH_BENCH_ONLY_CREATES === '1'
  console.log('1. Create throughput with and without the search index')
  const skipCreates = process.env.SEARCH_BENCH_SKIP_CREATES === '1'
  const createRows: [string, CreateFigures][] = []
  if (!skipCreates) {
    for (const [label, path, bulk] of [
      ['hooks.createJob, one at a time', 'api', 0],
      ['hooks.enqueueJobs, 1,000 per call', 'api', 1000],
      ['job store alone, one per call (200 in flight)', 'store', 0],
      ['job store alone, 1,000 per call', 'store', 1000],
    ] as const) {
      createRows.push([label, await measureCreates(path, bulk)])
    }
  }

  if (onlyCreates) return printCreates(dialect, createRows)
  console.log(`2. Seeding ${JOBS} jobs`)
  const jobpost = await openJobpost(POSTGRES ? 'bench' : 'bench')
  const seedRate = await seed(jobpost)
  if (seedRate) console.log(`  → ${Math.round(seedRate)} jobs/s (bulk, with the index)`)

  console.log('3. Searches (RegisterJobs.getJobs: page of 100 + total)')
  const subscriber = 7
  const rows: Row[] = [
    await timeQuery(jobpost, 'a word of 100 jobs (batch4242)', { search: 'batch4242' }),
    await timeQuery(jobpost, 'a word of 1 job (ref777777)', { search: 'ref777777' }),
    await timeQuery(jobpost, 'data.batch=batch4242 (100 jobs)', { data: { batch: 'batch4242' } }),
    await timeQuery(jobpost, 'data.order.id=1500000 (1 job)', { data: { 'order.id': '1500000' } }),
    await timeQuery(jobpost, 'data.shop=shop-17 + status=completed', { data: { shop: 'shop-17' }, status: 'completed' }),
    await timeQuery(jobpost, 'a rare word as a subscriber (batch4242, createdBy)', { search: 'batch4242', createdBy: subscriber }),
    await timeQuery(jobpost, 'a common word (sync, 1 in 6)', { search: 'sync' }),
    await timeQuery(jobpost, 'a word in every job (example)', { search: 'example' }),
    await timeQuery(jobpost, 'a 2-letter prefix (ka)', { search: 'ka' }),
    await timeQuery(jobpost, 'a common prefix (custom)', { search: 'custom' }),
    await timeQuery(jobpost, 'two common words (sync eur)', { search: 'sync eur' }),
    await timeQuery(jobpost, 'a common word, status=failed', { search: 'sync', status: 'failed' }),
    await timeQuery(jobpost, 'a common word as a subscriber', { search: 'sync', createdBy: subscriber }),
    await timeQuery(jobpost, 'a word in every job as a subscriber', { search: 'example', createdBy: subscriber }),
    await timeQuery(jobpost, 'a common word, next page by cursor', { search: 'sync' }, true),
    await timeQuery(jobpost, 'a common word sorted by -priority', { search: 'sync', sort: '-priority' }),
  ]
  await jobpost.close()

  console.log('\nREADME table:\n')
  console.log(`| ${dialect}, ${JOBS.toLocaleString('en')} jobs | matches | median ms | max ms | event loop held ms |`)
  console.log('|---|---|---|---|---|')
  for (const row of rows) console.log(`| ${row.what} | ${row.matches} | ${row.medianMs.toFixed(1)} | ${row.maxMs.toFixed(1)} | ${row.loopMaxMs.toFixed(1)} |`)
  printCreates(dialect, createRows)
  if (seedRate) console.log(`Bulk seeding with the index: ${Math.round(seedRate)} jobs/s.`)
}

if (process.argv[1] && import.meta.url === pathToFileURL(path_.resolve(process.argv[1])).href) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
