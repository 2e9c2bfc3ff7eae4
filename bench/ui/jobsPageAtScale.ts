/**
 * The jobs page at a million jobs (issue 14: "`/admin/jobs` with 1M jobs interactive ≤ 1 s"), in
 * headless Chromium against a real server on a SQLite file:
 *
 *   npx tsx bench/ui/jobsPageAtScale.ts          (SCALE_JOBS=1000000 by default)
 *
 * Seeds SCALE_JOBS jobs through the job store (statuses and types mixed, as bench/seed.ts writes
 * them), signs in, then measures three navigations the way a user meets them: opening
 * `/admin/jobs` (until its rows are shown and a click on a tab answers), switching to the Failed
 * tab, and sorting by priority. Each figure is from the navigation or click to the rows being shown,
 * with the longest main-thread task (PerformanceObserver 'longtask') during it.
 * One JSON line on stdout; exit code 1 when a target is missed.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { chromium } from 'playwright-core'
import { loadConfig } from '../../core/config.js'
import { createJobpost } from '../../core/createJobpost.js'
import type { JobStatus } from '../../core/contract.js'
import { seedJobs } from '../seed.js'

const JOBS = Number(process.env.SCALE_JOBS ?? 1_000_000)
const TARGET_MS = 1000
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const EMAIL = 'scale-admin@example.com'
const PASSWORD = 'scale password 42'
const note = (text: string) => process.stderr.write(`${text}\n`)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-scale-'))
const jobpost = await createJobpost({
  ...loadConfig({ LOG_LEVEL: 'silent', JOB_CREATE_RATE_PER_MINUTE: '0', MAX_PENDING_PER_OWNER: '0' }),
  database: { dialect: 'sqlite', filename: path.join(dir, 'scale.sqlite') },
  activePlugins: [],
  port: 0,
  runWorker: false,
})
const url = await jobpost.listen()
await jobpost.auth.createUser({ email: EMAIL, password: PASSWORD, roles: ['administrator'] })

const statuses: JobStatus[] = ['completed', 'completed', 'completed', 'completed', 'failed', 'cancelled', 'pending', 'paused']
const started = performance.now()
const base = Date.now() - 10 * 24 * 3600_000
await seedJobs(jobpost.jobStore, JOBS, (i) => ({
  status: statuses[i % statuses.length]!,
  at: new Date(base + i * 500).toISOString(),
  type: `scale-${i % 7}`,
}))
note(`seeded ${JOBS} jobs in ${((performance.now() - started) / 1000).toFixed(0)} s`)

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const page = await (await browser.newContext({ viewport: { width: 1920, height: 1080 } })).newPage()
// Every document records its long tasks from its start (a navigation makes a new document).
await page.addInitScript(() => {
  const w = window as unknown as { __long: number[] }
  w.__long = []
  new PerformanceObserver((list) => list.getEntries().forEach((entry) => w.__long.push(entry.duration))).observe({ type: 'longtask', buffered: true })
})
await page.goto(`${url}/admin/`)
await page.getByLabel('Email').fill(EMAIL)
await page.getByLabel('Password').fill(PASSWORD)
await page.getByRole('button', { name: 'Sign in' }).click()
await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor({ timeout: 30_000 })

const rows = page.locator('[data-test="job-row"]')
/** Runs `act`, waits until the first row shows `expect` (or any row), returns ms and the longest task. */
async function measure(label: string, act: () => Promise<unknown>, ready: () => Promise<unknown>) {
  await page.evaluate(() => void ((window as unknown as { __long: number[] }).__long = []))
  const t0 = performance.now()
  await act()
  await ready()
  const ms = performance.now() - t0
  const longest = await page.evaluate(() => Math.max(0, ...((window as unknown as { __long?: number[] }).__long ?? []))).catch(() => 0)
  note(`${label}: ${ms.toFixed(0)} ms (longest task ${longest.toFixed(0)} ms)`)
  return { label, ms: Math.round(ms), longestTaskMs: Math.round(longest) }
}

const figures = [
  await measure(
    'open /admin/jobs (rows shown, then a tab click answers)',
    () => page.goto(`${url}/admin/jobs?tab=all`),
    async () => {
      await rows.first().waitFor({ timeout: 30_000 })
      await page.locator('[data-test="tab-pending"], [data-test="tab-active"]').first().click()
      await page.waitForURL(/tab=(pending|active)/, { timeout: 30_000 })
      await rows.first().waitFor({ timeout: 30_000 })
    },
  ),
  await measure(
    'Failed tab',
    () => page.locator('[data-test="tab-failed"]').click(),
    () => page.locator('[data-test="job-row"][data-status="failed"]').first().waitFor({ timeout: 30_000 }),
  ),
  await measure(
    'All tab sorted by priority (URL)',
    () => page.goto(`${url}/admin/jobs?tab=all&sort=-priority`),
    () => rows.first().waitFor({ timeout: 30_000 }),
  ),
]
await browser.close()
await jobpost.close()
fs.rmSync(dir, { recursive: true, force: true })

const missed = figures.filter((figure) => figure.ms > TARGET_MS)
process.stdout.write(`${JSON.stringify({ id: 'ui.jobsPageAtScale', jobs: JOBS, targetMs: TARGET_MS, figures, met: missed.length === 0 })}\n`)
process.exit(missed.length ? 1 : 0)
