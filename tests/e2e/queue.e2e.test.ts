import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Job } from '../../core/contract.js'
import { UnrecoverableError } from '../../core/errors.js'
import { eventually, PASSWORD, startJobpost } from '../support/harness.js'
import { CHROMIUM_PATH, hasChromium, openPage, screenshot, signInAt, startWithAdmin, submitLogin, type WatchedPage } from './support/browser.js'
import { callApi } from './support/api.js'

if (!hasChromium) {
  console.warn(`\n  ⚠ SKIPPED (queue view end-to-end): no Chromium at ${CHROMIUM_PATH}; install it with apt-get install chromium\n`)
}

const TYPE = 'render'

/**
 * Issue 16 in headless Chromium against the real server: the Queue view reorders pending jobs by
 * drag and drop and by keyboard through POST /jobs/reorder; the order survives a reload, a second
 * browser sees it live, and a failed chain is drawn as a chain in the job's drawer.
 */
describe.skipIf(!hasChromium)('the Queue view and the chain drawing, in headless Chromium', { timeout: 90_000 }, () => {
  let jobpost: Awaited<ReturnType<typeof startJobpost>>
  let browser: Browser
  let token: string
  const email = 'queue-admin@example.com'
  const pages: WatchedPage[] = []

  beforeAll(async () => {
    ;({ jobpost, token, browser } = await startWithAdmin(email))
  })
  afterAll(async () => {
    await browser?.close()
    await jobpost?.close({ graceMs: 100 })
  })
  afterEach(async () => {
    // No dialog, no script error, no CSP violation on any page.
    for (const { context, dialogs, problems } of pages.splice(0)) {
      await context.close()
      expect(dialogs).toEqual([])
      expect(problems.filter((p) => !/Failed to load resource/.test(p))).toEqual([])
    }
  })

  const api = <T>(method: string, route: string, body?: unknown, auth = true) => callApi<T>(jobpost.url, auth ? token : undefined, method, route, body)

  async function signIn(to: string): Promise<Page> {
    const watched = await openPage(browser, { width: 1280, height: 860 })
    pages.push(watched)
    const { page } = watched
    await signInAt(page, jobpost.url, to, email)
    return page
  }

  /** The names the page shows, top first. */
  const shown = (page: Page) => page.locator('[data-test="queue-row"] [data-test="queue-name"]').allTextContents()
  const row = (page: Page, name: string) => page.locator('[data-test="queue-row"]', { has: page.locator('[data-test="queue-name"]', { hasText: new RegExp(`^${name}$`) }) })
  /** Waits until the page shows exactly this order. */
  const showsOrder = (page: Page, names: string[]) => eventually(async () => JSON.stringify(await shown(page)) === JSON.stringify(names), { timeoutMs: 8000 })
  /** The order the server (and so the worker) has. */
  const serverOrder = async () => (await api<Job[]>('GET', `/jobs/queue?type=${TYPE}`)).map((job) => job.name)

  it('reorders by drag and drop and by keyboard; the order survives a reload and a second browser sees it live', async () => {
    const hooks = jobpost.pluginHooks('render-farm')
    const start = Date.now() - 5 * 60_000
    // Queued (enqueueJob) but nothing runs them: no processor for the type, so the order stays visible.
    for (let i = 1; i <= 6; i++) {
      await hooks.enqueueJob({ type: TYPE, name: `Render shot ${i}`, runAt: new Date(start + i * 1000).toISOString(), priority: i === 2 ? 1 : 0 })
    }
    await hooks.enqueueJob({ type: TYPE, name: 'Nightly archive', delay: 3_600_000 })
    let order = ['Render shot 2', 'Render shot 1', 'Render shot 3', 'Render shot 4', 'Render shot 5', 'Render shot 6']
    expect(await serverOrder()).toEqual(order)

    const page = await signIn(`/queue?type=${TYPE}`)
    await showsOrder(page, order)
    expect(await row(page, 'Render shot 2').locator('[data-test="queue-priority"]').textContent()).toContain('priority 1')
    expect(await page.locator('[data-test="queue-delayed"]').textContent()).toContain('Nightly archive')

    // A second browser (another session) on the same queue.
    const other = await signIn(`/queue?type=${TYPE}`)
    await showsOrder(other, order)

    // Mouse: drag "Render shot 5" onto the top half of the first row.
    await row(page, 'Render shot 5').dragTo(row(page, 'Render shot 2'), { targetPosition: { x: 60, y: 4 } })
    order = ['Render shot 5', 'Render shot 2', 'Render shot 1', 'Render shot 3', 'Render shot 4', 'Render shot 6']
    await showsOrder(page, order)
    await eventually(async () => JSON.stringify(await serverOrder()) === JSON.stringify(order))
    await showsOrder(other, order)

    // Keyboard: "Render shot 6" up twice (Alt+↑), then "Render shot 1" to the top (Alt+Home).
    await row(page, 'Render shot 6').focus()
    await page.keyboard.press('Alt+ArrowUp')
    await showsOrder(page, ['Render shot 5', 'Render shot 2', 'Render shot 1', 'Render shot 3', 'Render shot 6', 'Render shot 4'])
    // The moved row keeps the focus, so the next key moves it again.
    expect(await page.evaluate(() => document.activeElement?.querySelector('[data-test="queue-name"]')?.textContent)).toBe('Render shot 6')
    // One move at a time: the next once this one is saved (and the row still has the focus then).
    await eventually(async () => !(await page.locator('.queue-list--saving').count()))
    expect(await page.evaluate(() => document.activeElement?.querySelector('[data-test="queue-name"]')?.textContent)).toBe('Render shot 6')
    await page.keyboard.press('Alt+ArrowUp')
    await eventually(async () => !(await page.locator('.queue-list--saving').count()))
    await row(page, 'Render shot 1').focus()
    await page.keyboard.press('Alt+Home')
    order = ['Render shot 1', 'Render shot 5', 'Render shot 2', 'Render shot 6', 'Render shot 3', 'Render shot 4']
    await showsOrder(page, order)
    await eventually(async () => JSON.stringify(await serverOrder()) === JSON.stringify(order))
    // Announced once the server's answer is in (the order above shows before it, optimistically).
    await eventually(async () => (await page.locator('[data-test="queue-announcement"]').textContent()) === 'Render shot 1 moved to position 1 of 6.')
    // Every moved job now has the priority of the head.
    expect(new Set((await page.locator('[data-test="queue-priority"]').allTextContents()).map((text) => text.trim()))).toEqual(new Set(['priority 1']))

    // The second browser followed without a reload; the first one finds the order again after one.
    await showsOrder(other, order)
    await page.reload()
    await showsOrder(page, order)

    // New jobs arrive live, in their place: a high-priority one at the top of both pages.
    await hooks.enqueueJob({ type: TYPE, name: 'Render hotfix', priority: 5 })
    order = ['Render hotfix', ...order]
    await showsOrder(page, order)
    await showsOrder(other, order)
    await row(page, 'Render shot 3').hover()
    await screenshot(page, 'queue-view.png')
    expect(await serverOrder()).toEqual(order)

    // The drawer's priority control: "Render shot 4" (last) to priority 9 goes to the top, on both pages.
    await row(page, 'Render shot 4').locator('[data-test="queue-name"]').click()
    const drawer = page.locator('[data-test="drawer"]')
    await drawer.locator('[data-test="priority-input"]').fill('9')
    await drawer.locator('[data-test="priority-save"]').click()
    order = ['Render shot 4', ...order.filter((name) => name !== 'Render shot 4')]
    await showsOrder(other, order)
    await page.keyboard.press('Escape')
    await drawer.waitFor({ state: 'detached' })
    await showsOrder(page, order)
    expect(await row(page, 'Render shot 4').locator('[data-test="queue-priority"]').textContent()).toContain('priority 9')
  })

  it('fits a narrow screen: no sideways scrolling, the move buttons still reachable', async () => {
    const hooks = jobpost.pluginHooks('render-farm')
    for (let i = 1; i <= 3; i++) await hooks.enqueueJob({ type: 'narrow-render', name: `A rather long job name for a narrow screen #${i}` })
    const watched = await openPage(browser, { width: 380, height: 800 })
    pages.push(watched)
    const { page } = watched
    await page.goto(`${jobpost.url}/admin/queue?type=narrow-render`)
    await page.waitForURL(/\/admin\/login/)
    await submitLogin(page, email)
    await page.locator('[data-test="queue-row"]').first().waitFor()
    await screenshot(page, 'queue-view-narrow.png')
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>('main *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1).map((el) => `${el.tagName}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`).slice(0, 10),
    )
    expect(wide).toEqual([])
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true)
    const button = page.locator('[data-test="queue-row"]').nth(1).locator('[data-test="move-top"]')
    const box = (await button.boundingBox())!
    expect(box.x + box.width).toBeLessThanOrEqual(380)
    await screenshot(page, 'queue-view-narrow.png')
  })

  it('shows an editor (no manage_jobs) the queue read-only', async () => {
    await jobpost.pluginHooks('render-farm').enqueueJob({ type: 'editor-render', name: 'Seen, not moved' })
    await jobpost.auth.createUser({ email: 'queue-editor@example.com', password: PASSWORD, roles: ['editor'] })
    const watched = await openPage(browser)
    pages.push(watched)
    const { page } = watched
    await page.goto(`${jobpost.url}/admin/queue?type=editor-render`)
    await page.waitForURL(/\/admin\/login/)
    await submitLogin(page, 'queue-editor@example.com')
    await showsOrder(page, ['Seen, not moved'])
    expect(await page.locator('[data-test="queue-row"]').getAttribute('draggable')).toBe('false')
    expect(await page.locator('[data-test="move-up"], [data-test="move-top"]').count()).toBe(0)
  })

  it('draws a failed chain as a chain in the job’s drawer', async () => {
    const hooks = jobpost.pluginHooks('voxcraft')
    hooks.registerJobProcessor('url_fetch', async () => ({ content: 'Jobpost keeps background jobs as posts…', words: 512 }))
    hooks.registerJobProcessor('summarize', async () => {
      throw new UnrecoverableError('LLM quota exceeded (HTTP 429 from the summarizer)')
    })
    hooks.registerJobProcessor('tts', async () => ({ audio: 'never.mp3' }))
    jobpost.runtime.start()
    try {
      const chain = await api<Job>('POST', '/jobs/chain', {
        name: 'Article → summary → speech',
        steps: [
          { type: 'url_fetch', name: 'Fetch the article', payload: { url: 'https://example.com/post' } },
          { type: 'summarize', name: 'Summarize it', payload: { text: '{{steps[0].result.content}}', words: '{{steps[0].result.words}}' } },
          { type: 'tts', name: 'Read it aloud', payload: { text: '{{steps[1].result.summary}}', title: '{{steps[0].result.content}}' } },
        ],
      })
      await eventually(async () => (await api<Job>('GET', `/jobs/${chain.jobId}`)).status === 'failed', { timeoutMs: 10_000 })

      const page = await signIn(`/jobs?job=${chain.jobId}`)
      const drawing = page.locator('[data-test="drawer"] [data-test="chain-view"]')
      await drawing.locator('[data-test="chain-step"]').first().waitFor()
      const steps = drawing.locator('[data-test="chain-step"]')
      expect(await steps.evaluateAll((els) => els.map((el) => [el.getAttribute('data-state'), el.getAttribute('data-failed')]))).toEqual([
        ['completed', 'false'],
        ['failed', 'true'],
        ['never_created', 'false'],
      ])
      expect(await steps.nth(1).locator('[data-test="chain-step-summary"]').textContent()).toContain('LLM quota exceeded')
      expect(await steps.nth(0).locator('[data-test="chain-step-duration"]').textContent()).toMatch(/\d+(\.\d)? (ms|s)/)
      expect(await steps.nth(2).textContent()).toContain('never ran')
      expect(await steps.nth(2).locator('[data-test="chain-step-uses"]').textContent()).toContain('steps[1].result.summary')
      // Template links drawn as arcs: 0→1 and 1→2, 0→2.
      expect(await drawing.locator('path.chain__arc').count()).toBe(3)
      expect(await drawing.locator('[data-test="chain-summary"]').textContent()).toContain('step 2 failed and ended the chain')
      await drawing.scrollIntoViewIfNeeded()
      await screenshot(page, 'chain-failed.png')
    } finally {
      await jobpost.runtime.stop()
    }
  })
})
