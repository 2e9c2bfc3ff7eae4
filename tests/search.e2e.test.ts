import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Job } from '../core/contract.js'
import { CHROMIUM_PATH, hasChromium, openPage, screenshot, startWithAdmin, submitLogin } from './e2e/support/browser.js'
import type { startJobpost } from './support/harness.js'
import { callApi } from './e2e/support/api.js'

if (!hasChromium) {
  console.warn(`\n  ⚠ SKIPPED (search end-to-end): no Chromium at ${CHROMIUM_PATH}; install it with apt-get install chromium\n`)
}

/** Issue 17 in the browser: the jobs page's search box finds a job by a value inside its data. */
describe.skipIf(!hasChromium)('search in the admin UI, headless Chromium against the real server', { timeout: 60_000 }, () => {
  let jobpost: Awaited<ReturnType<typeof startJobpost>>
  let browser: Browser
  let token: string
  const email = 'search-e2e@example.com'

  beforeAll(async () => {
    ;({ jobpost, token, browser } = await startWithAdmin(email))
  })
  afterAll(async () => {
    await browser?.close()
    await jobpost?.close()
  })

  const api = <T>(method: string, route: string, body?: unknown, auth = true) => callApi<T>(jobpost.url, auth ? token : undefined, method, route, body)

  it('finds a job by a value deep inside its data, marks the hit in the row and shows where it is in the drawer', async () => {
    const target = await api<Job>('POST', '/jobs', {
      name: 'Sync customer',
      type: 'crm.sync',
      data: { customer: { id: 4711, company: 'Quintessa Lighthouse Ltd' }, lines: [{ sku: 'QL-1' }] },
    })
    for (let i = 0; i < 5; i++) {
      await api<Job>('POST', '/jobs', { name: `Sync customer ${i}`, type: 'crm.sync', data: { customer: { id: i, company: `Other Company ${i}` } } })
    }
    const { page, context, dialogs, problems } = await openPage(browser)
    await page.goto(`${jobpost.url}/admin/login`)
    await submitLogin(page, email)
    await page.waitForURL((url) => !url.pathname.includes('/login'))
    await page.goto(`${jobpost.url}/admin/jobs`)
    await page.locator('[data-test="job-row"]').first().waitFor()
    expect(await page.locator('[data-test="job-row"]:visible').count()).toBe(6)

    // A prefix of a word inside data.customer.company; the name says nothing of it.
    await page.locator('[data-test="search"]:visible').fill('quintes')
    await page.waitForFunction(() => document.querySelectorAll('[data-test="job-row"]').length > 0 && [...document.querySelectorAll('[data-test="job-row"]')].filter((row) => (row as HTMLElement).offsetParent !== null).length === 1)
    const row = page.locator(`[data-test="job-row"][data-job-id="${target.jobId}"]:visible`)
    await row.waitFor()
    const match = row.locator('[data-test="search-match"]')
    await expect.poll(() => match.textContent()).toContain('data.customer.company')
    expect(await match.locator('mark').textContent()).toBe('Quintessa')
    await screenshot(page, 'search-row.png')

    // The drawer says where the match is.
    await row.locator('[data-test="open"]').click()
    const drawerMatches = page.locator('.drawer [data-test="search-matches"], [role="dialog"] [data-test="search-matches"]').first()
    await drawerMatches.waitFor()
    expect(await drawerMatches.textContent()).toContain('data.customer.company')
    expect(await drawerMatches.locator('mark').first().textContent()).toBe('Quintessa')

    // Words that are not in any job: no row.
    await page.keyboard.press('Escape')
    await page.locator('[data-test="search"]:visible').fill('quintessa nowhere')
    await page.locator('[data-test="empty"]:visible').waitFor()
    expect(dialogs).toEqual([])
    expect(problems.filter((p) => !/Failed to load resource/.test(p))).toEqual([])
    await context.close()
  })
})
