import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Job } from '../../core/contract.js'
import type { startJobpost } from '../support/harness.js'
import { CHROMIUM_PATH, hasChromium, openPage, screenshot, signInAt, startWithAdmin, submitLogin, type WatchedPage } from './support/browser.js'
import { callApi } from './support/api.js'

if (!hasChromium) {
  console.warn(`\n  ⚠ SKIPPED (admin UI at scale): no Chromium at ${CHROMIUM_PATH}; install it with apt-get install chromium\n`)
}

type Scheme = 'light' | 'dark'
const NARROW = { width: 390, height: 844 }
const WIDE = { width: 1920, height: 1080 }

/**
 * Issue 14 in real Chromium against the real server: the notification stack under a burst, the
 * layout at 390 px and 1920 px in light and dark, the jobs page's address, sorting, paging, bulk
 * actions, delayed jobs, the drawer, schedules, workers, the chart, and the page offline.
 */
describe.skipIf(!hasChromium)('the admin UI at scale and on every screen', { timeout: 90_000 }, () => {
  let jobpost: Awaited<ReturnType<typeof startJobpost>>
  let browser: Browser
  let token: string
  let adminId: number
  const email = 'scale-admin@example.com'
  let watched: WatchedPage | undefined
  /** Which of the new server routes this server has (others add them in parallel): tests adapt. */
  const routes = { notifications: false, bulk: false, runNow: false, series: false, sort: false, attempts: false, logs: false }

  beforeAll(async () => {
    ;({ jobpost, adminId, token, browser } = await startWithAdmin(email, { activePlugins: ['example-job-plugin'], runWorker: true }))
    const probe = await createJob({ name: 'Probe', type: 'probe', showNotification: false })
    const exists = async (method: string, route: string, body?: unknown) => {
      const res = await raw(method, route, body)
      const envelope = (await res.json().catch(() => null)) as { error?: { code?: string } } | null
      return !(res.status === 404 && envelope?.error?.code === 'NOT_FOUND')
    }
    routes.notifications = await exists('GET', '/notifications')
    routes.bulk = await exists('POST', '/jobs/bulk', { action: 'cancel', jobIds: [] })
    routes.runNow = await exists('POST', `/jobs/${probe.jobId}/run-now`, {})
    routes.series = await exists('GET', '/jobs/stats/series?minutes=5')
    routes.sort = (await raw('GET', '/jobs?sort=priority&limit=1')).status === 200
    routes.attempts = await exists('GET', `/jobs/${probe.jobId}/attempts`)
    routes.logs = await exists('GET', `/jobs/${probe.jobId}/logs`)
    await api('POST', `/jobs/${probe.jobId}/cancel`, {})
    console.info('server routes present:', JSON.stringify(routes))
  })

  afterAll(async () => {
    await browser?.close()
    await jobpost?.close()
  })

  afterEach(async () => {
    if (watched) {
      const { dialogs, problems, context } = watched
      watched = undefined
      await context.close()
      expect(dialogs).toEqual([])
      expect(problems.filter((p) => !/Failed to load resource|ERR_INTERNET_DISCONNECTED|WebSocket connection/.test(p))).toEqual([])
    }
  })

  function raw(method: string, route: string, body?: unknown) {
    return fetch(`${jobpost.url}/api/v1${route}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  }
  const api = <T>(method: string, route: string, body?: unknown, auth = true) => callApi<T>(jobpost.url, auth ? token : undefined, method, route, body)
  const createJob = (body: Record<string, unknown>) => api<Job>('POST', '/jobs', body)
  const plugin = (slug: string) => jobpost.pluginHooks(slug)

  async function signIn(options: { width: number; height: number; scheme?: Scheme; path?: string }): Promise<Page> {
    watched = await openPage(browser, { width: options.width, height: options.height, colorScheme: options.scheme ?? 'light' })
    const { page } = watched
    await signInAt(page, jobpost.url, options.path ?? '/', email)
    return page
  }

  /** Whether two elements' boxes overlap on screen. */
  async function overlaps(page: Page, a: string, b: string): Promise<boolean> {
    return page.evaluate(
      ([sa, sb]) => {
        const ra = document.querySelector(sa!)?.getBoundingClientRect()
        const rb = document.querySelector(sb!)?.getBoundingClientRect()
        if (!ra || !rb || !ra.width || !rb.width) return false
        return ra.left < rb.right && rb.left < ra.right && ra.top < rb.bottom && rb.top < ra.bottom
      },
      [a, b],
    )
  }
  const pageWidth = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth)

  // ---------------------------------------------------------------------------------------------
  // Every screen, at both sizes and in both themes: no sideways scrolling, the right layout, a look.

  for (const [size, viewport] of [
    ['narrow', NARROW],
    ['wide', WIDE],
  ] as const) {
    for (const scheme of ['light', 'dark'] as const) {
      it(`lays out every page at ${viewport.width}×${viewport.height} in ${scheme}`, async () => {
        const tag = `${size}-${scheme}`
        // Something to show: a burst (grouped), a failure, a delayed job, a batch.
        const resizes = []
        for (let i = 0; i < 8; i++) {
          const job = await plugin('media-plugin').createJob({ name: 'Resize image', type: `resize-${tag}`, createdBy: adminId })
          await job.start()
          await job.updateProgress(10 * i)
          resizes.push(job)
        }
        const failing = await plugin('sync-plugin').createJob({ name: 'Sync Remote Data', type: `sync-${tag}`, description: 'Pulls orders', createdBy: adminId })
        await failing.start()
        await failing.fail('API timeout: the remote server did not answer')
        await createJob({ name: `Nightly report ${tag}`, type: 'report', runAt: new Date(Date.now() + 58 * 60_000 + 30_000).toISOString() })

        const page = await signIn({ ...viewport, scheme })
        // The system's colour scheme decides, with no toggle pressed.
        const rootBg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)
        expect(rootBg).toBe(scheme === 'dark' ? 'rgb(11, 17, 32)' : 'rgb(245, 246, 248)')
        expect(await pageWidth(page)).toBeLessThanOrEqual(viewport.width)
        const stack = page.locator('[data-test="job-queue"]')
        await page.locator('[data-test="stack-summary"]', { hasText: 'failed' }).waitFor()
        if (size === 'narrow') {
          // The top bar fits: its menu holds the links and Sign out.
          expect(await page.locator('[data-test="sign-out"]').isVisible()).toBe(false)
          const topbar = await page.locator('.topbar').boundingBox()
          expect(topbar!.width).toBeLessThanOrEqual(viewport.width)
          // The stack is a pill, and opens on demand.
          expect(await stack.locator('.job-queue__body').isVisible()).toBe(false)
          await screenshot(page, `dashboard-${tag}.png`)
          await page.locator('[data-test="stack-toggle"]').click()
          await stack.locator('[data-test="group"]').first().waitFor()
          await screenshot(page, `stack-open-${tag}.png`)
          // Escape closes it, and the focus goes back to its button.
          await page.keyboard.press('Escape')
          expect(await stack.locator('.job-queue__body').isVisible()).toBe(false)
          expect(await page.evaluate(() => document.activeElement?.getAttribute('data-test'))).toBe('stack-toggle')
          // The menu.
          await page.locator('[data-test="menu-button"]').click()
          await page.locator('#main-menu').getByRole('link', { name: 'Jobs', exact: true }).waitFor()
          await screenshot(page, `menu-${tag}.png`)
          await page.keyboard.press('Escape')
          expect(await page.locator('#main-menu').isVisible()).toBe(false)
        } else {
          // Wide: the stack has its own column, beside the page, open.
          await stack.locator('[data-test="group"]').first().waitFor()
          expect(await overlaps(page, '[data-test="job-queue"]', '#main')).toBe(false)
          const main = await page.locator('#main').boundingBox()
          expect(main!.width).toBeGreaterThan(1400)
          await screenshot(page, `dashboard-${tag}.png`)
        }

        await page.goto(`${jobpost.url}/admin/jobs?tab=all`)
        await page.locator('[data-test="job-row"]').first().waitFor()
        expect(await pageWidth(page)).toBeLessThanOrEqual(viewport.width)
        if (size === 'narrow') {
          // Cards instead of the table; the tabs scroll sideways inside their strip.
          expect(await page.locator('table.jobs-table').count()).toBe(0)
          expect(await page.locator('[data-test="job-list"]').count()).toBe(1)
          const tabs = await page.locator('.tabs').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }))
          expect(tabs.scroll).toBeGreaterThan(tabs.client)
          const name = await page.locator('[data-test="row-name"]').first().boundingBox()
          expect(name!.width).toBeGreaterThan(80)
        } else {
          expect(await page.locator('table.jobs-table').count()).toBe(1)
          const table = await page.locator('table.jobs-table').boundingBox()
          expect(table!.width).toBeGreaterThan(1400)
          // Stable column widths: rows that update (progress, a status, a longer error) never move them.
          const widths = () => page.locator('table.jobs-table thead th').evaluateAll((ths) => ths.map((th) => Math.round(th.getBoundingClientRect().width)))
          const before = await widths()
          for (const job of resizes) await job.updateProgress(99)
          await resizes[0]!.fail('a much longer error message than any other row has, to see whether the columns move when it arrives')
          await page.locator(`[data-test="job-row"][data-job-id="${resizes[0]!.jobId}"][data-status="failed"]`).waitFor()
          await page.locator('[data-test="job-row"] .mini-progress[aria-valuenow="99"]').first().waitFor()
          expect(await widths()).toEqual(before)
        }
        await page.locator('[data-test="runs-in"]', { hasText: /runs in (58|59) min/ }).first().waitFor()
        await screenshot(page, `jobs-${tag}.png`)

        // The drawer of the failed job, by its address.
        await page.goto(`${jobpost.url}/admin/jobs?tab=failed&job=${failing.jobId}`)
        const drawer = page.locator('[data-test="drawer"]')
        await drawer.waitFor()
        expect(await drawer.locator('[data-test="drawer-error"]').textContent()).toBe('API timeout: the remote server did not answer')
        expect(await pageWidth(page)).toBeLessThanOrEqual(viewport.width)
        await screenshot(page, `drawer-${tag}.png`)
        await page.keyboard.press('Escape')
        await drawer.waitFor({ state: 'detached' })
        expect(new URL(page.url()).searchParams.get('job')).toBeNull()

        for (const [route, name] of [
          ['/schedules', 'schedules'],
          ['/workers', 'workers'],
        ] as const) {
          await page.goto(`${jobpost.url}/admin${route}`)
          await page.locator('h1', { hasText: name === 'schedules' ? 'Schedules' : 'Workers' }).waitFor()
          await page.locator('[data-test="empty"], table').first().waitFor()
          expect(await pageWidth(page)).toBeLessThanOrEqual(viewport.width)
          await screenshot(page, `${name}-${tag}.png`)
        }
        await failing.cancel().catch(() => undefined)
      })
    }
  }

  // ---------------------------------------------------------------------------------------------

  it('keeps the stack calm under a burst of 300 jobs: one group card, at most 10 cards, short tasks', async () => {
    const page = await signIn(WIDE)
    await page.evaluate(() => {
      const w = window as unknown as { __long: number[]; __maxCards: number }
      w.__long = []
      w.__maxCards = 0
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) w.__long.push(entry.duration)
      }).observe({ type: 'longtask', buffered: false })
      new MutationObserver(() => {
        w.__maxCards = Math.max(w.__maxCards, document.querySelectorAll('.job-queue .card').length)
      }).observe(document.body, { subtree: true, childList: true })
    })
    const jobs = []
    for (let i = 0; i < 300; i++) jobs.push(await plugin('import-plugin').createJob({ name: 'Import product', type: 'burst-import', createdBy: adminId }))
    for (const job of jobs.slice(0, 200)) await job.start()
    for (const [i, job] of jobs.slice(0, 200).entries()) await job.updateProgress(i % 100)
    for (const job of jobs.slice(0, 50)) await job.complete({ ok: true })
    for (const job of jobs.slice(50, 60)) await job.fail('bad row')

    const group = page.locator('[data-test="group"][data-group="burst-import"]')
    await group.and(page.locator('[data-count="300"]')).waitFor({ timeout: 20_000 })
    await group.locator('[data-test="group-counts"]', { hasText: '10 failed' }).waitFor({ timeout: 20_000 })
    await screenshot(page, 'stack-burst-wide-light.png')
    const measured = await page.evaluate(() => {
      const w = window as unknown as { __long: number[]; __maxCards: number }
      return { longest: Math.max(0, ...w.__long), total: w.__long.reduce((a, b) => a + b, 0), maxCards: w.__maxCards }
    })
    console.info('burst of 300 in the page:', JSON.stringify(measured))
    expect(measured.maxCards).toBeLessThanOrEqual(10)
    expect(measured.longest).toBeLessThan(200)

    // Completed ones leave 5 s after completing; "Clear finished" closes the failed ones.
    await group.locator('[data-test="group-counts"]', { hasText: /^(?!.*completed)/ }).waitFor({ timeout: 15_000 })
    await page.locator('[data-test="clear-finished"]').click()
    await group.and(page.locator('[data-count="240"]')).waitFor()
    // Collapse and expand.
    await page.locator('[data-test="stack-toggle"]').click()
    expect(await page.locator('#job-queue-body').isVisible()).toBe(false)
    await page.locator('[data-test="stack-toggle"]').click()
    expect(await page.locator('#job-queue-body').isVisible()).toBe(true)
    for (const job of jobs.slice(60)) await job.cancel()
  })

  it('never covers page controls: on a narrow screen the pill steps aside when the page is used, and the last controls scroll clear of it', async () => {
    for (let i = 0; i < 25; i++) await createJob({ name: `Row ${i}`, type: 'cover-test', showNotification: i < 3 })
    const page = await signIn({ ...NARROW, path: '/jobs?tab=active&type=cover-test' })
    await page.locator('[data-test="range"]', { hasText: '1–20 of 25' }).waitFor()
    await page.locator('[data-test="stack-toggle"]').click()
    await page.locator('#job-queue-body').waitFor()
    // Using the page (focus moves to it) puts the stack away.
    await page.locator('[data-test="search"]').focus()
    await page.locator('#job-queue-body').waitFor({ state: 'hidden' })
    // At the bottom of the page, Next is clear of the pill.
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight))
    expect(await overlaps(page, '[data-test="next"]', '[data-test="stack-toggle"]')).toBe(false)
    expect(await overlaps(page, '.pager__range', '[data-test="stack-toggle"]')).toBe(false)
    await page.locator('[data-test="next"]').click()
    await page.locator('[data-test="range"]', { hasText: '21–25 of 25' }).waitFor()
    // Keyboard focus is never hidden under it: each focused control is scrolled clear.
    await page.locator('[data-test="prev"]').focus()
    expect(await overlaps(page, '[data-test="prev"]', '[data-test="stack-toggle"]')).toBe(false)
    await screenshot(page, 'jobs-bottom-narrow-light.png')
  })

  it('keeps the jobs page state in the address: tab, search, filters, sort, page, size and the open job', async () => {
    const tag = `url${Date.now()}`
    const made: Job[] = []
    for (let i = 0; i < 45; i++) made.push(await createJob({ name: `Invoice ${tag} ${i}`, type: 'invoice', source: `billing-${tag}`, priority: i % 5, showNotification: false }))
    const page = await signIn({ ...WIDE, path: '/jobs' })
    await page.locator('[data-test="search"]').fill(tag)
    await page.locator('[data-test="range"]', { hasText: '1–20 of 45' }).waitFor()
    // Page numbers: 1 2 3.
    expect(await page.locator('.pager__page').allTextContents()).toEqual(['1', '2', '3'])
    await page.locator('[data-test="page-3"]').click()
    await page.locator('[data-test="range"]', { hasText: '41–45 of 45' }).waitFor()
    expect(await page.locator('[data-test="page-3"]').getAttribute('aria-current')).toBe('page')
    // Page size.
    await page.locator('[data-test="page-size"]').selectOption('50')
    await page.locator('[data-test="range"]', { hasText: '1–45 of 45' }).waitFor()
    await page.locator('[data-test="page-size"]').selectOption('20')
    await page.locator('[data-test="page-2"]').click()
    await page.locator('[data-test="range"]', { hasText: '21–40 of 45' }).waitFor()
    // Partial source: a part of the plugin's name finds it.
    await page.locator('[data-test="source"]').focus()
    await page.locator('[data-test="source"]').fill(`lling-${tag}`)
    await page.waitForURL((url) => url.searchParams.get('source') === `billing-${tag}`)
    await page.locator('[data-test="range"]', { hasText: '1–20 of 45' }).waitFor()
    await page.locator('[data-test="page-2"]').click()

    if (routes.sort) {
      await page.locator('[data-test="sort-priority"]').click()
      await page.waitForURL((url) => url.searchParams.get('sort') === '-priority')
      await page.locator('th[aria-sort="descending"]', { hasText: 'Priority' }).waitFor()
      const priorities = await page.locator('[data-test="job-row"] td:nth-child(9)').allTextContents()
      expect(priorities.map(Number)).toEqual([...priorities.map(Number)].sort((a, b) => b - a))
      expect(priorities[0]).toBe('4')
      // A new sort starts at page 1.
      expect(new URL(page.url()).searchParams.get('page')).toBeNull()
      await page.locator('[data-test="page-2"]').click()
      await page.locator('[data-test="range"]', { hasText: '21–40 of 45' }).waitFor()
    } else {
      console.warn('  (sort is not on this server yet: headers are plain text)')
      expect(await page.locator('[data-test="sort-priority"]').count()).toBe(0)
    }

    const first = page.locator('[data-test="job-row"]').first()
    const openedId = await first.getAttribute('data-job-id')
    await first.locator('[data-test="open"]').click()
    await page.locator('[data-test="drawer"]').waitFor()
    await page.waitForURL((url) => url.searchParams.get('job') === openedId)
    const url = new URL(page.url())
    expect(url.searchParams.get('q')).toBe(tag)
    expect(url.searchParams.get('tab')).toBe('active')
    expect(url.searchParams.get('page')).toBe('2')

    // A reload, or the link sent to a colleague, shows the same.
    await page.reload()
    await page.locator('[data-test="drawer"]').waitFor()
    expect(await page.locator('#drawer-title').textContent()).toBe(made.find((j) => j.jobId === openedId)!.name)
    await page.keyboard.press('Escape')
    await page.locator('[data-test="range"]', { hasText: '21–40 of 45' }).waitFor()
    expect(await page.locator('[data-test="search"]').inputValue()).toBe(tag)
    // Opening a job is a step in the history: Back closes it, Forward opens it again.
    await page.locator('[data-test="job-row"]').nth(1).locator('[data-test="open"]').click()
    await page.locator('[data-test="drawer"]').waitFor()
    await page.goBack()
    await page.locator('[data-test="drawer"]').waitFor({ state: 'detached' })
    expect(new URL(page.url()).searchParams.get('job')).toBeNull()
    expect(new URL(page.url()).searchParams.get('page')).toBe('2')
    await page.goForward()
    await page.locator('[data-test="drawer"]').waitFor()
    await page.keyboard.press('Escape')
    await page.locator('[data-test="drawer"]').waitFor({ state: 'detached' })

    // Select all 45 matching.
    await page.getByLabel('Select all jobs on this page').check()
    await page.locator('[data-test="select-matching"]', { hasText: 'Select all 45 matching' }).click()
    await page.locator('[data-test="selected-count"]', { hasText: 'All 45 matching selected' }).waitFor()
    await page.locator('[data-test="matching-cancel"]').click()
    await page.getByRole('dialog', { name: 'Cancel all 45 matching jobs?' }).getByRole('button', { name: 'Cancel 45 jobs' }).click()
    if (routes.bulk) {
      await page.locator('[data-test="bulk-progress"]', { hasText: /Cancel: 45 changed, 0 skipped, of 45 matching/ }).waitFor({ timeout: 20_000 })
      await screenshot(page, 'bulk-done-wide-light.png')
      await page.locator('[data-test="range"]', { hasText: 'No jobs' }).waitFor()
    } else {
      await page.locator('[data-test="notice"]', { hasText: 'cannot act on every matching job' }).waitFor()
      for (const job of made) await api('POST', `/jobs/${job.jobId}/cancel`, {})
    }
  })

  it('shows when a delayed job runs, and runs it now', async () => {
    const delayed = await createJob({ name: `Delayed ${Date.now()}`, type: 'delayed', runAt: new Date(Date.now() + 58 * 60_000 + 30_000).toISOString(), showNotification: false })
    const page = await signIn({ ...WIDE, path: `/jobs?tab=active&q=${encodeURIComponent(delayed.name)}` })
    const row = page.locator(`[data-test="job-row"][data-job-id="${delayed.jobId}"]`)
    await row.locator('[data-test="runs-in"]', { hasText: 'runs in 58 min' }).waitFor()
    await row.getByRole('button', { name: `Run now ${delayed.name}` }).click()
    if (routes.runNow) {
      await row.locator('[data-test="runs-in"]').waitFor({ state: 'detached' })
      const after = await api<Job>('GET', `/jobs/${delayed.jobId}`)
      expect(Date.parse(after.runAt)).toBeLessThanOrEqual(Date.now() + 1000)
    } else {
      await page.locator('[data-test="notice"]', { hasText: 'refused' }).or(page.locator('[data-test="notice"]', { hasText: 'run-now' })).waitFor()
    }
    await api('POST', `/jobs/${delayed.jobId}/cancel`, {}).catch(() => undefined)
  })

  it('shows a batch in the drawer: result, items with headings, a status filter, paging, exports and actions', async () => {
    const hooks = plugin('media-plugin')
    hooks.registerBatchProcessor(
      'thumbs',
      (item) => {
        if (Number(String(item.id).slice(1)) % 10 === 0) throw new Error(`cannot read ${String(item.id)}`)
        return { w: 64 }
      },
      { itemMaxAttempts: 1 },
    )
    const batch = await hooks.enqueueBatch({ type: 'thumbs', name: 'Make thumbnails', items: Array.from({ length: 75 }, (_, i) => ({ id: `p${i}` })), createdBy: adminId })
    const page = await signIn({ ...NARROW, scheme: 'dark', path: `/jobs?tab=all&job=${batch.jobId}` })
    const drawer = page.locator('[data-test="drawer"]')
    await drawer.locator('[data-test="items-range"]', { hasText: '1–50 of 75' }).waitFor({ timeout: 20_000 })
    expect(await drawer.locator('[data-test="items"] th').allTextContents()).toEqual(['#', 'Item', 'Status', 'Attempts', 'Error', 'Result', 'Started', 'Finished'])
    await drawer.locator('[data-test="item-status"]').selectOption('failed')
    await drawer.locator('[data-test="items"] tbody tr').first().waitFor()
    expect(await drawer.locator('[data-test="items"] tbody tr').count()).toBe(8)
    const download = page.waitForEvent('download')
    await drawer.locator('[data-test="export-csv"]').click()
    expect((await download).suggestedFilename()).toBe(`job-${batch.jobId}.csv`)
    await drawer.locator('[data-test="drawer-action-retry"]').or(drawer.locator('[data-test="drawer-action-delete"]')).first().waitFor()
    if (routes.attempts) await drawer.locator('[data-test="attempt"]').first().waitFor()
    else expect(await drawer.locator('[data-test="attempts"]').count()).toBe(0)
    await screenshot(page, 'drawer-batch-narrow-dark.png')
    // Focus stays inside the drawer.
    for (let i = 0; i < 30; i++) await page.keyboard.press('Tab')
    expect(await page.evaluate(() => !!document.activeElement?.closest('[data-test="drawer"]'))).toBe(true)
    await page.keyboard.press('Escape')
    await drawer.waitFor({ state: 'detached' })
  })

  it('shows a failed attempt’s error with its stack in the drawer, and the attempt timeline', async () => {
    const hooks = plugin('disk-plugin')
    hooks.registerJobProcessor(
      'explode',
      async () => {
        throw new Error('disk full on /var/data')
      },
      { maxAttempts: 1 },
    )
    const job = await hooks.enqueueJob({ name: 'Write archive', type: 'explode', createdBy: adminId })
    const page = await signIn({ ...WIDE, scheme: 'dark', path: `/jobs?tab=failed&job=${job.jobId}` })
    const drawer = page.locator('[data-test="drawer"]')
    await drawer.waitFor()
    await drawer.locator('[data-test="drawer-error"]', { hasText: 'disk full on /var/data' }).waitFor({ timeout: 15_000 })
    if (!routes.attempts) return
    await drawer.locator('[data-test="attempt"]').first().waitFor()
    const stack = drawer.locator('[data-test="drawer-stack"]')
    await stack.waitFor()
    expect(await stack.textContent()).toMatch(/Error: disk full on \/var\/data\n\s+at /)
    expect(await drawer.locator('[data-test="drawer-action-retry"]').count()).toBe(1)
    await screenshot(page, 'drawer-stack-wide-dark.png')
  })

  it('lists schedules with pattern, timezone and next run, and the workers with their heartbeats', async () => {
    await plugin('reports-plugin').scheduleJob({ name: 'nightly-report', schedule: '0 2 * * *', timezone: 'Europe/Paris', jobData: { type: 'report', name: 'Nightly report' } })
    const page = await signIn({ ...WIDE, scheme: 'dark', path: '/schedules' })
    const row = page.locator('[data-test="schedule-row"][data-name="nightly-report"]')
    await row.waitFor()
    expect(await row.locator('code').textContent()).toBe('0 2 * * *')
    expect(await row.textContent()).toContain('Europe/Paris')
    expect(await row.locator('[data-test="next-run"]').textContent()).toMatch(/^in \d+ (hr|min)/)
    await screenshot(page, 'schedules-filled-wide-dark.png')
    await page.getByRole('link', { name: 'Workers', exact: true }).click()
    await page.locator('[data-test="worker-row"]').first().waitFor()
    expect(await page.locator('[data-test="worker-row"][data-alive="true"]').count()).toBeGreaterThanOrEqual(1)
    await screenshot(page, 'workers-filled-wide-dark.png')
  })

  it('draws created, completed and failed per minute on the dashboard, live', async () => {
    const page = await signIn(WIDE)
    if (!routes.series) {
      await page.locator('[data-test="chart-unavailable"]').waitFor()
      console.warn('  (stats/series is not on this server yet: the dashboard says so)')
      return
    }
    const chart = page.locator('[data-test="chart"]')
    await chart.waitFor()
    const before = Number(await chart.locator('[data-test="chart-total-created"] strong').textContent())
    for (let i = 0; i < 3; i++) await createJob({ name: `Chart ${i}`, type: 'chart', showNotification: false })
    await chart.locator('[data-test="chart-total-created"] strong', { hasText: String(before + 3) }).waitFor({ timeout: 15_000 })
    expect(await chart.locator('path[data-series]').count()).toBe(3)
    await screenshot(page, 'dashboard-chart-wide-light.png')
  })

  it('offline: marks cards and rows stale, shows each tab its own rows or an honest empty state, and is back within seconds', async () => {
    const job = await createJob({ name: `Offline probe ${Date.now()}`, type: 'offline' })
    const page = await signIn({ ...WIDE, path: '/jobs?tab=active' })
    await page.locator(`[data-test="job-row"][data-job-id="${job.jobId}"]`).waitFor()
    await page.locator(`.job-queue [data-job-id="${job.jobId}"]`).waitFor()
    await watched!.context.setOffline(true)
    await page.locator('[data-test="offline"]').waitFor()
    await page.locator(`.job-queue [data-job-id="${job.jobId}"][data-stale="true"]`).waitFor()
    expect(await page.locator(`[data-test="job-row"][data-job-id="${job.jobId}"]`).getAttribute('data-stale')).toBe('true')
    // Another tab while offline: not the Active rows under "Failed".
    await page.locator('[data-test="tab-failed"]').click()
    await page.locator('[data-test="empty"]', { hasText: 'Could not load the failed jobs' }).waitFor()
    expect(await page.locator(`[data-test="job-row"][data-job-id="${job.jobId}"]`).count()).toBe(0)
    await screenshot(page, 'offline-wide-light.png')
    const backAt = Date.now()
    await watched!.context.setOffline(false)
    await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor({ timeout: 6000 })
    expect(Date.now() - backAt).toBeLessThan(6000)
    await page.locator('[data-test="offline"]').waitFor({ state: 'detached' })
    await page.locator(`.job-queue [data-job-id="${job.jobId}"]:not([data-stale])`).waitFor()
    await api('POST', `/jobs/${job.jobId}/cancel`, {})
  })

  it('switches to dark with the toggle, and keeps the skip link and keyboard paths', async () => {
    const page = await signIn(WIDE)
    await page.locator('[data-test="theme-toggle"]').click()
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark')
    expect(await page.locator('[data-test="theme-toggle"]').getAttribute('aria-pressed')).toBe('true')
    expect(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).toBe('rgb(11, 17, 32)')
    // The choice survives a reload (kept in localStorage; the token never is).
    await page.reload()
    await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor()
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark')
    expect(await page.evaluate(() => Object.keys(localStorage))).toEqual(['jobpost.theme'])
    // Skip link first.
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content')
    await page.keyboard.press('Enter')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('main')
    await page.locator('[data-test="theme-toggle"]').click()
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('light')
  })

  it('reads the stack from the server at start, and a dismissal in one tab holds in another', async () => {
    if (!routes.notifications) {
      console.warn('  (GET /api/v1/notifications is not on this server yet: the stack lists active jobs instead)')
      return
    }
    const name = `Failed sync ${Date.now()}`
    const failing = await plugin('sync-plugin').createJob({ name, type: 'shared-dismiss', createdBy: adminId })
    await failing.start()
    await failing.fail('remote down')
    const page = await signIn(WIDE)
    const card = page.locator(`.job-queue [data-job-id="${failing.jobId}"]`)
    await card.waitFor()
    // A reload keeps a failed card that was never dismissed.
    await page.reload()
    await card.waitFor()
    // A second tab of the same user (its own session) shows it too...
    const other = await watched!.context.newPage()
    await other.goto(`${jobpost.url}/admin/`)
    await submitLogin(other, email)
    const otherCard = other.locator(`.job-queue [data-job-id="${failing.jobId}"]`)
    await otherCard.waitFor()
    await card.getByRole('button', { name: `Dismiss ${name}` }).click()
    await card.waitFor({ state: 'detached' })
    // ...and drops it at once when it is dismissed in the first.
    await otherCard.waitFor({ state: 'detached', timeout: 3000 })
    await other.close()
    const list = await api<Job[]>('GET', '/notifications')
    expect(list.some((j) => j.jobId === failing.jobId)).toBe(false)
    await page.reload()
    await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor()
    await page.locator('[data-test="stack-summary"]').waitFor()
    expect(await card.count()).toBe(0)
  })
})
