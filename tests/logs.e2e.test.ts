import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jobLogsFor } from '../core/logs/index.js'
import { eventually, PASSWORD, startJobpost } from './support/harness.js'
import { assertAdminUiBuilt, CHROMIUM_PATH, hasChromium, launchChromium, openPage, screenshot, signInAt, type WatchedPage } from './e2e/support/browser.js'
import { registerLogProcessors } from './logs-fixtures/processors.js'

if (!hasChromium) console.warn(`\n  ⚠ SKIPPED (job log drawer end-to-end): no Chromium at ${CHROMIUM_PATH}\n`)

/** Issue 15 in the browser: the drawer shows a running job's log as it is written, and its attempts. */
describe.skipIf(!hasChromium)('the job drawer’s live log in headless Chromium', { timeout: 60_000 }, () => {
  let jobpost: Awaited<ReturnType<typeof startJobpost>>
  let browser: Browser
  let watched: WatchedPage | undefined
  const email = 'logs-e2e@example.com'

  beforeAll(async () => {
    assertAdminUiBuilt()
    jobpost = await startJobpost({ runWorker: true, workerPollMs: 100 })
    registerLogProcessors(jobpost.pluginHooks('logs-e2e'))
    await jobpost.auth.createUser({ email, password: PASSWORD, roles: ['administrator'] })
    browser = await launchChromium()
  })

  afterAll(async () => {
    if (watched) await watched.context.close()
    await browser?.close()
    await jobpost?.close()
  })

  async function openDrawer(jobId: string): Promise<Page> {
    watched ??= await openPage(browser, { width: 1280, height: 900 })
    const { page } = watched
    if (!page.url().includes('/admin/') || page.url().includes('/login')) {
      await signInAt(page, jobpost.url, '/', email)
    }
    await page.goto(`${jobpost.url}/admin/jobs?job=${jobId}`)
    await page.locator(`[data-test="drawer"][data-job-id="${jobId}"]`).waitFor()
    await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor()
    return page
  }

  it('shows lines as they are written, follows the tail until the reader scrolls up, filters by level, escapes control characters', async () => {
    const handle = await jobpost.pluginHooks('logs-e2e').createJob({ name: 'Live log', type: 'e2e-tracked' })
    await handle.start()
    handle.log('written before the drawer opened')
    await jobLogsFor(jobpost.jobs)!.flush()
    const page = await openDrawer(handle.jobId)
    const lines = page.locator('[data-test="log-lines"] [data-test="log-line"]')
    await lines.first().waitFor()
    expect(await lines.first().textContent()).toContain('written before the drawer opened')
    // The drawer subscribed to the job's log (subscribe_logs): new lines arrive without a reload.
    await eventually(() => jobLogsFor(jobpost.jobs)!.fanout.subscriptionCount === 1)

    for (let i = 1; i <= 5; i++) {
      handle.log(`live line ${i}`, { step: i }, i === 3 ? 'warn' : i === 5 ? 'error' : 'info')
      await page.locator('[data-test="log-line"]', { hasText: `live line ${i}` }).waitFor({ timeout: 5000 })
    }
    expect(await lines.count()).toBe(6)
    expect(await lines.nth(3).getAttribute('data-level')).toBe('warn')
    expect(await lines.nth(3).textContent()).toContain('{"step":3}')

    // Control characters are shown escaped, never interpreted; markup stays text.
    handle.log('colour \u001b[31mred\u001b[0m bell\u0007 <img src=x onerror=alert(1)>')
    const escaped = page.locator('[data-test="log-line"]', { hasText: 'colour' })
    await escaped.waitFor()
    expect(await escaped.textContent()).toContain('colour \\u001b[31mred\\u001b[0m bell\\u0007 <img src=x onerror=alert(1)>')
    expect(await page.locator('[data-test="log-lines"] img').count()).toBe(0)

    // Many lines: the box follows the tail.
    for (let i = 1; i <= 80; i++) handle.log(`bulk ${i}`)
    await page.locator('[data-test="log-line"]', { hasText: 'bulk 80' }).waitFor()
    const box = page.locator('[data-test="log-lines"]')
    const atBottom = () => box.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 24)
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-test="log-lines"]')!
      return el.scrollHeight - el.scrollTop - el.clientHeight < 24
    })
    await screenshot(page, 'job-log-live.png')

    // Scrolled up, it stays where the reader is while lines arrive; "Follow" resumes.
    await box.evaluate((el) => {
      el.scrollTop = 0
      el.dispatchEvent(new Event('scroll'))
    })
    const follow = page.getByRole('button', { name: 'Follow' })
    await follow.waitFor()
    handle.log('arrives while reading')
    await page.locator('[data-test="log-line"]', { hasText: 'arrives while reading' }).waitFor({ state: 'attached' })
    expect(await box.evaluate((el) => el.scrollTop)).toBe(0)
    expect(await atBottom()).toBe(false)
    await follow.click()
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-test="log-lines"]')!
      return el.scrollHeight - el.scrollTop - el.clientHeight < 24
    })

    // Filter by level: warn and above.
    await page.locator('[data-test="log-level"]').selectOption('warn')
    await eventually(async () => (await lines.count()) === 2)
    expect(await lines.allTextContents()).toEqual([expect.stringContaining('live line 3'), expect.stringContaining('live line 5')])
    handle.log('a new error', undefined, 'error')
    handle.log('a new info line')
    await page.locator('[data-test="log-line"]', { hasText: 'a new error' }).waitFor()
    expect(await lines.count()).toBe(3)
    // Copy: the lines shown, as text, control characters escaped (a terminal would run them).
    await watched!.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: jobpost.url })
    await page.getByRole('button', { name: 'Copy' }).click()
    await page.getByRole('button', { name: 'Copied' }).waitFor()
    const copied = await page.evaluate(() => navigator.clipboard.readText())
    expect(copied.split('\n')).toEqual([
      expect.stringMatching(/^\d{4}-.*Z WARN live line 3 \{"step":3\}$/),
      expect.stringMatching(/ERROR live line 5 \{"step":5\}$/),
      expect.stringMatching(/ERROR a new error$/),
    ])
    await page.locator('[data-test="log-level"]').selectOption('')
    await page.locator('[data-test="log-line"]', { hasText: 'a new info line' }).waitFor()
    await page.getByRole('button', { name: 'Copy' }).click()
    expect(await page.evaluate(() => navigator.clipboard.readText())).toContain('colour \\u001b[31mred\\u001b[0m bell\\u0007')
    await handle.complete()
  })

  it('shows the attempts as a timeline with each outcome and error', async () => {
    const job = await jobpost.pluginHooks('logs-e2e').enqueueJob({ type: 'fail-once', data: {} })
    await eventually(async () => (await jobpost.jobs.getJob(job.jobId))?.status === 'completed', { timeoutMs: 15_000 })
    await jobLogsFor(jobpost.jobs)!.flush()
    const page = await openDrawer(job.jobId)
    const attempts = page.locator('[data-test="attempts"] [data-test="attempt"]')
    await eventually(async () => (await attempts.count()) === 2)
    expect(await attempts.nth(0).textContent()).toMatch(/Attempt 1\s*failed/)
    expect(await attempts.nth(0).textContent()).toContain('first attempt fails')
    expect(await attempts.nth(1).textContent()).toMatch(/Attempt 2\s*completed/)
    const logLines = page.locator('[data-test="log-lines"] [data-test="log-line"]')
    await eventually(async () => (await logLines.count()) === 2)
    expect(await logLines.allTextContents()).toEqual([expect.stringContaining('attempt 1 begins'), expect.stringContaining('attempt 2 begins')])
    await screenshot(page, 'job-attempts.png')
    expect(watched!.dialogs).toEqual([])
    expect(watched!.problems.filter((p) => !/Failed to load resource/.test(p))).toEqual([])
  })
})
