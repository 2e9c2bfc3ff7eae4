import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Job } from '../../core/contract.js'
import { PASSWORD, startJobpost } from '../support/harness.js'
import { CHROMIUM_PATH, hasChromium, openPage, screenshot, startWithAdmin, submitLogin, type WatchedPage } from './support/browser.js'
import { callApi } from './support/api.js'

if (!hasChromium) {
  console.warn(`\n  ⚠ SKIPPED (admin UI end-to-end): no Chromium at ${CHROMIUM_PATH}; install it with apt-get install chromium\n`)
}

const XSS_NAME = '<img src=x onerror=alert(1)>'

describe.skipIf(!hasChromium)('the admin UI in headless Chromium, against the real server', { timeout: 60_000 }, () => {
  let jobpost: Awaited<ReturnType<typeof startJobpost>>
  let browser: Browser
  let token: string
  const email = 'e2e-admin@example.com'
  let watched: WatchedPage | undefined

  beforeAll(async () => {
    process.env.EXAMPLE_JOB_STEP_MS = '150'
    ;({ jobpost, token, browser } = await startWithAdmin(email, { activePlugins: ['example-job-plugin'] }))
  })

  afterAll(async () => {
    await browser?.close()
    await jobpost?.close()
    delete process.env.EXAMPLE_JOB_STEP_MS
  })

  afterEach(async () => {
    // Every page of every test: no dialog (the XSS probe would open one), no script error, no CSP violation.
    if (watched) {
      const { dialogs, problems, context } = watched
      watched = undefined
      await context.close()
      expect(dialogs).toEqual([])
      expect(problems.filter((p) => !/Failed to load resource/.test(p))).toEqual([])
    }
  })

  const api = <T>(method: string, route: string, body?: unknown, auth = true) => callApi<T>(jobpost.url, auth ? token : undefined, method, route, body)
  const runExample = (kind: 'backup' | 'failing') => api<Job>('POST', '/plugins/example-job-plugin/run', { kind })
  const createJob = (body: Record<string, unknown>) => api<Job>('POST', '/jobs', body)

  /** Opens /admin, is sent to the login page, signs in, lands on the dashboard. */
  async function signIn(options: { width?: number; height?: number; as?: string } = {}): Promise<Page> {
    watched = await openPage(browser, options)
    const { page } = watched
    await page.goto(`${jobpost.url}/admin/`)
    await page.waitForURL(/\/admin\/login/)
    // No notification stack on the login page.
    expect(await page.locator('.job-queue').count()).toBe(0)
    await submitLogin(page, options.as ?? email)
    await page.waitForURL((url) => !url.pathname.includes('/login'))
    await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor()
    return page
  }

  const card = (page: Page, jobId: string) => page.locator(`.job-queue [data-job-id="${jobId}"]`)

  it('refuses a wrong password, and shows the stack on every page once signed in', async () => {
    watched = await openPage(browser)
    const { page } = watched
    await page.goto(`${jobpost.url}/admin/jobs`)
    await page.waitForURL(/\/admin\/login\?redirect=/)
    await submitLogin(page, email, 'not the password')
    await page.locator('[data-test="login-error"]', { hasText: 'Wrong email or password.' }).waitFor()
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    // Back to the page first asked for.
    await page.waitForURL(/\/admin\/jobs$/)
    expect(await page.locator('.job-queue').count()).toBe(1)
    await page.getByRole('link', { name: 'Dashboard', exact: true }).click()
    await page.waitForURL(/\/admin\/$/)
    expect(await page.locator('.job-queue').count()).toBe(1)
    // The token lives in sessionStorage only.
    const pageToken = await page.evaluate(() => sessionStorage.getItem('jobpost.token'))
    expect(pageToken).toBeTruthy()
    expect(await page.evaluate(() => localStorage.length)).toBe(0)

    // The session is revoked elsewhere: the app goes back to the login page (the socket's next ticket, or
    // the page's next call, is refused with 401); a reload with the stale token does too.
    const revoked = await fetch(`${jobpost.url}/api/v1/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${pageToken}`, 'Content-Type': 'application/json' },
      body: '{}',
    })
    expect(revoked.status).toBe(200)
    await page.goto(`${jobpost.url}/admin/jobs`)
    await page.waitForURL(/\/admin\/login\?redirect=/)
    expect(await page.evaluate(() => sessionStorage.getItem('jobpost.token'))).toBeNull()
    expect(await page.locator('.job-queue').count()).toBe(0)
  })

  it('shows the backup job rising to 100 %, then lets it leave about 5 s after it completes', async () => {
    const page = await signIn()
    // Record every percent and status the card shows, and when it completes and leaves, in the page.
    await page.evaluate(() => {
      const log: { percents: number[]; completedAt?: number; goneAt?: number } = { percents: [] }
      ;(window as unknown as { __stack: typeof log }).__stack = log
      new MutationObserver(() => {
        const cardEl = document.querySelector('.job-queue [data-job-id]')
        if (cardEl) {
          const percent = cardEl.querySelector('[data-test="percent"]')?.textContent
          const value = percent ? Number.parseInt(percent, 10) : NaN
          if (!Number.isNaN(value) && log.percents.at(-1) !== value) log.percents.push(value)
          if (cardEl.getAttribute('data-status') === 'completed' && log.completedAt === undefined) log.completedAt = performance.now()
        } else if (log.completedAt !== undefined && log.goneAt === undefined) {
          log.goneAt = performance.now()
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
    })

    const job = await runExample('backup')
    const backup = card(page, job.jobId)
    await backup.waitFor()
    expect(await backup.locator('[data-test="name"]').textContent()).toBe('Backup Database')
    expect(await backup.locator('[data-test="description"]').textContent()).toBe('Creating a full database backup')
    const src = await backup.locator('img').getAttribute('src')
    expect(src).toMatch(/^data:image\/svg\+xml;base64,/)
    expect(await page.locator('.job-queue svg').count()).toBe(0)
    // The custom icon really renders (an <img> that failed to decode has no natural size).
    expect(await backup.locator('img').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true)

    await page.waitForFunction(() => {
      const p = (window as unknown as { __stack: { percents: number[] } }).__stack.percents
      return p.some((v) => v > 0 && v < 100)
    })
    await page.locator('[data-test="bell-count"]', { hasText: /^[1-9]/ }).waitFor()
    await screenshot(page, 'job-stack-running.png')

    await backup.and(page.locator('[data-status="completed"]')).waitFor({ timeout: 10_000 })
    expect(await backup.locator('[data-test="percent"]').textContent()).toBe('100%')
    await backup.waitFor({ state: 'detached', timeout: 10_000 })
    const log = await page.evaluate(() => (window as unknown as { __stack: { percents: number[]; completedAt: number; goneAt: number } }).__stack)
    expect(log.percents.at(-1)).toBe(100)
    expect(log.percents.length).toBeGreaterThanOrEqual(3)
    expect([...log.percents].sort((a, b) => a - b)).toEqual(log.percents)
    const stayedMs = log.goneAt - log.completedAt
    expect(stayedMs).toBeGreaterThan(4800)
    expect(stayedMs).toBeLessThan(6500)
    await page.locator('[data-test="bell-count"]', { hasText: /^0$/ }).waitFor()
  })

  it('shows a failing job’s error in red, and dismisses it from the keyboard', async () => {
    const page = await signIn()
    const backup = await runExample('backup')
    const job = await runExample('failing')
    const failing = card(page, job.jobId)
    const error = failing.locator('[data-test="error"]')
    await error.waitFor({ timeout: 10_000 })
    expect(await error.textContent()).toContain('API timeout: the remote server did not answer')
    expect(await error.evaluate((el) => getComputedStyle(el).color)).toBe('rgb(185, 28, 28)')
    expect(await failing.getAttribute('data-status')).toBe('failed')
    // Newest on top: the failing job was started after the backup.
    const order = await page.locator('.job-queue [data-job-id]').evaluateAll((els) => els.map((el) => el.getAttribute('data-job-id')))
    expect(order.indexOf(job.jobId)).toBeLessThan(order.indexOf(backup.jobId))
    await screenshot(page, 'job-stack.png')

    await failing.getByRole('button', { name: 'Dismiss Sync Remote Data' }).focus()
    await page.keyboard.press('Enter')
    await failing.waitFor({ state: 'detached' })
    // The backup, started alongside, completes and leaves on its own.
    await card(page, backup.jobId).waitFor({ state: 'detached', timeout: 15_000 })
  })

  it('lists, filters, paginates and cancels on the jobs page, live', async () => {
    const tag = `e2e-${Date.now()}`
    for (let i = 1; i <= 22; i++) await createJob({ name: `Report ${tag} #${i}`, type: 'report', source: tag, showNotification: false })
    const quarterly = await createJob({ name: `Quarterly export ${tag}`, type: 'export', source: tag, showNotification: false })
    // One more active job from elsewhere, so that the unfiltered page (24) cannot pass for the filtered one (23).
    const other = await createJob({ name: `Other ${tag}`, type: 'report', source: 'other-plugin', showNotification: false })
    const page = await signIn()
    // The dashboard counts them, and links to their tab.
    await page.locator('[data-test="tile-active"]', { hasText: '24' }).click()
    await page.waitForURL(/\/admin\/jobs\?tab=active$/)
    const rows = page.locator('[data-test="job-row"]')
    const range = page.locator('[data-test="range"]')

    // Server-side filter by source, then pagination (20 a page).
    await range.filter({ hasText: '1–20 of 24' }).waitFor()
    await page.locator('[data-test="source"]').fill(tag)
    await range.filter({ hasText: '1–20 of 23' }).waitFor()
    expect(await rows.count()).toBe(20)
    await page.locator('[data-test="next"]').click()
    await range.filter({ hasText: '21–23 of 23' }).waitFor()
    expect(await rows.count()).toBe(3)

    // Type filter, then search.
    await page.locator('[data-test="type"]').selectOption('export')
    await range.filter({ hasText: '1–1 of 1' }).waitFor()
    await page.locator('[data-test="type"]').selectOption('')
    await page.locator('[data-test="search"]').fill('Quarterly')
    await range.filter({ hasText: '1–1 of 1' }).waitFor()
    expect(await rows.first().locator('[data-test="row-name"]').textContent()).toBe(`Quarterly export ${tag}`)

    // Cancel from the row: it leaves the Active tab and is counted under Cancelled.
    const cancelledTab = page.locator('[data-test="tab-cancelled"] [data-test="tab-count"]')
    const cancelledBefore = Number(await cancelledTab.textContent())
    await rows.first().getByRole('button', { name: `Cancel Quarterly export ${tag}` }).click()
    await range.filter({ hasText: 'No jobs' }).waitFor()
    await cancelledTab.filter({ hasText: String(cancelledBefore + 1) }).waitFor()
    expect((await api<Job>('GET', `/jobs/${quarterly.jobId}`)).status).toBe('cancelled')
    await page.locator('[data-test="tab-cancelled"]').click()
    await page.waitForURL((url) => url.searchParams.get('tab') === 'cancelled')
    await range.filter({ hasText: '1–1 of 1' }).waitFor()
    expect(await rows.first().getAttribute('data-status')).toBe('cancelled')

    // Bulk: select the page of reports in Active and cancel them all.
    await page.locator('[data-test="search"]').fill('')
    await page.locator('[data-test="tab-active"]').click()
    await range.filter({ hasText: '1–20 of 22' }).waitFor()
    await page.getByLabel('Select all jobs on this page').check()
    await page.locator('[data-test="bulk-cancel"]').click()
    await page.locator('[data-test="notice"]', { hasText: 'Cancel: 20 jobs.' }).waitFor()
    await range.filter({ hasText: '1–2 of 2' }).waitFor()

    // Live, with no reload: a job started elsewhere shows up and moves.
    await page.locator('[data-test="source"]').fill('')
    await range.filter({ hasText: /of \d+/ }).waitFor()
    const backup = await runExample('backup')
    const row = page.locator(`[data-test="job-row"][data-job-id="${backup.jobId}"]`)
    await row.waitFor({ timeout: 10_000 })
    await page.waitForFunction(
      (jobId) => {
        const bar = document.querySelector(`[data-job-id="${jobId}"] .mini-progress`)
        return Number(bar?.getAttribute('aria-valuenow') ?? 0) > 0
      },
      backup.jobId,
      { timeout: 10_000 },
    )
    await screenshot(page, 'jobs-page.png')
    await api('POST', `/jobs/${other.jobId}/cancel`, {})

    // The drawer shows the job's details and its export.
    await row.locator('[data-test="open"]').click()
    const drawer = page.locator('[data-test="drawer"]')
    await drawer.waitFor()
    expect(await drawer.locator('#drawer-title').textContent()).toBe('Backup Database')
    expect(await drawer.locator('[data-test="metadata"]').textContent()).toContain('"backupType": "full"')
    await drawer.locator('.muted', { hasText: 'This job has no items.' }).or(drawer.locator('[data-test="items"]')).waitFor()
    // Nothing to export from a job without items: no export buttons (a batch's drawer has them: adminScale.e2e).
    await drawer.locator('.muted', { hasText: 'This job has no items.' }).waitFor()
    expect(await drawer.locator('[data-test="export-csv"]').count()).toBe(0)
    await page.keyboard.press('Escape')
    await drawer.waitFor({ state: 'detached' })
  })

  it('deletes a finished job and cleans up old jobs, each after a confirmation', async () => {
    const doomed = await createJob({ name: `Doomed ${Date.now()}`, type: 'report', showNotification: false })
    await api('POST', `/jobs/${doomed.jobId}/cancel`, {})
    const page = await signIn()
    await page.getByRole('link', { name: 'Jobs', exact: true }).click()
    await page.locator('[data-test="tab-cancelled"]').click()
    await page.locator('[data-test="search"]').fill(doomed.name)
    const row = page.locator(`[data-test="job-row"][data-job-id="${doomed.jobId}"]`)
    await row.getByRole('button', { name: `Delete ${doomed.name}` }).click()
    const confirm = page.getByRole('dialog', { name: 'Delete this job?' })
    // Escape keeps the job.
    await confirm.waitFor()
    await page.keyboard.press('Escape')
    await confirm.waitFor({ state: 'detached' })
    expect((await api<Job>('GET', `/jobs/${doomed.jobId}`)).jobId).toBe(doomed.jobId)
    await row.getByRole('button', { name: `Delete ${doomed.name}` }).click()
    await confirm.getByRole('button', { name: 'Delete' }).click()
    await row.waitFor({ state: 'detached' })
    await expect(api('GET', `/jobs/${doomed.jobId}`)).rejects.toThrow(/404/)
    await page.locator('[data-test="search"]').fill('')

    await page.locator('[data-test="cleanup"]').click()
    const dialog = page.getByRole('dialog', { name: 'Clean up old jobs' })
    await dialog.waitFor()
    await dialog.locator('[data-test="cleanup-days"]').fill('7')
    await dialog.getByRole('button', { name: 'Delete old jobs' }).click()
    await page.locator('[data-test="notice"]', { hasText: 'Deleted 0 finished jobs older than 7 days.' }).waitFor()
    await dialog.waitFor({ state: 'detached' })
  })

  it('offers an editor only what the server lets an editor do', async () => {
    const editorEmail = `editor-${Date.now()}@example.com`
    const editor = await jobpost.auth.createUser({ email: editorEmail, password: PASSWORD, roles: ['editor'] })
    const adminJob = await createJob({ name: `Admin's job ${Date.now()}`, type: 'report', showNotification: false })
    const own = await jobpost.pluginHooks('editor-tools').createJob({ name: `Editor's job ${Date.now()}`, type: 'report', createdBy: editor.id })
    const page = await signIn({ as: editorEmail })
    await page.goto(`${jobpost.url}/admin/jobs?tab=active`)
    const ownRow = page.locator(`[data-test="job-row"][data-job-id="${own.jobId}"]`)
    const adminRow = page.locator(`[data-test="job-row"][data-job-id="${adminJob.jobId}"]`)
    await ownRow.waitFor()
    await adminRow.waitFor()
    // read_jobs: the editor sees the administrator's job, but may not act on it; its own it may cancel.
    expect(await adminRow.locator('.actions button').count()).toBe(0)
    expect(await ownRow.locator('.actions button').allTextContents()).toEqual(['Cancel'])
    expect(await page.locator('[data-test="cleanup"]').count()).toBe(0)
    await api('POST', `/jobs/${adminJob.jobId}/cancel`, {})
    await own.cancel()
  })

  it('renders a job named like markup as text, in the stack and on the jobs page', async () => {
    const page = await signIn({ width: 390, height: 844 })
    const job = await createJob({ name: XSS_NAME, description: XSS_NAME, type: 'xss-probe' })
    const xss = card(page, job.jobId)
    // At 390 px the stack is a pill in the corner until opened.
    await page.locator('[data-test="stack-toggle"]').click()
    await xss.waitFor()
    expect(await xss.locator('[data-test="name"]').textContent()).toBe(XSS_NAME)
    expect(await xss.locator('[data-test="description"]').textContent()).toBe(XSS_NAME)
    // The links are in the top bar's menu.
    await page.locator('[data-test="menu-button"]').click()
    await page.getByRole('link', { name: 'Jobs', exact: true }).click()
    const row = page.locator(`[data-test="job-row"][data-job-id="${job.jobId}"]`)
    await row.waitFor()
    expect(await row.locator('[data-test="row-name"]').textContent()).toBe(XSS_NAME)
    await row.locator('[data-test="open"]').click()
    expect(await page.locator('#drawer-title').textContent()).toBe(XSS_NAME)
    // No element was made from the name: the only <img> elements are icons from data: URIs.
    const srcs = await page.locator('img').evaluateAll((imgs) => imgs.map((img) => img.getAttribute('src') ?? ''))
    expect(srcs.every((src) => src.startsWith('data:image/svg+xml;base64,'))).toBe(true)
    await screenshot(page, 'narrow-jobs-page.png')
    await api('POST', `/jobs/${job.jobId}/cancel`, {})
  })
})
