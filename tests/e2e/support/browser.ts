import fs from 'node:fs'
import path from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { DEFAULT_ADMIN_UI_DIST } from '../../../core/providers/admin-ui-provider/index.js'
import { PASSWORD, startJobpost } from '../../support/harness.js'
import { callApi } from './api.js'

export const CHROMIUM_PATH = '/usr/bin/chromium'
export const hasChromium = fs.existsSync(CHROMIUM_PATH)
/** Screenshots of the admin UI, kept with the docs (README links them). */
export const ARTIFACTS_DIR = path.resolve('docs/screenshots')

/** Headless Debian Chromium, without the background traffic a closed network refuses. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
}

export interface WatchedPage {
  page: Page
  context: BrowserContext
  /** Dialogs (alert, confirm...) the page opened: none is expected. */
  dialogs: string[]
  /** Console errors, page errors and CSP violations. */
  problems: string[]
}

/** A fresh context (its own sessionStorage) and page, recording dialogs, errors and CSP violations. */
export async function openPage(
  browser: Browser,
  options: { width?: number; height?: number; colorScheme?: 'light' | 'dark' } = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
    colorScheme: options.colorScheme ?? 'light',
  })
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  const dialogs: string[] = []
  const problems: string[] = []
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`)
    void dialog.dismiss()
  })
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`)
  })
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`)
    })
  })
  return { page, context, dialogs, problems }
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true })
  const file = path.join(ARTIFACTS_DIR, name)
  await page.screenshot({ path: file })
  return file
}

/** Fails clearly when the admin UI is not built (the server would have nothing to serve). */
export function assertAdminUiBuilt(): void {
  if (!fs.existsSync(path.join(DEFAULT_ADMIN_UI_DIST, 'index.html'))) {
    throw new Error('admin-ui/dist is missing: run `npm run build` (npm test does it first, in its pretest script)')
  }
}

/** Fills the admin's login form (the page shows it) and submits it. */
export async function submitLogin(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

/** Opens `/admin<to>` signed out, is sent to the login page, signs in, and waits until the admin is live. */
export async function signInAt(page: Page, baseUrl: string, to: string, email: string): Promise<void> {
  await page.goto(`${baseUrl}/admin${to}`)
  await page.waitForURL(/\/admin\/login/)
  await submitLogin(page, email)
  await page.waitForURL((url) => !url.pathname.includes('/login'))
  await page.locator('[data-test="connection"]', { hasText: 'Live' }).waitFor()
}

/**
 * A served Jobpost with an administrator (`email`, PASSWORD), that administrator's API token, and
 * a headless Chromium: what each admin end-to-end suite starts from.
 */
export async function startWithAdmin(
  email: string,
  overrides: Parameters<typeof startJobpost>[0] = {},
): Promise<{ jobpost: Awaited<ReturnType<typeof startJobpost>>; adminId: number; token: string; browser: Browser }> {
  assertAdminUiBuilt()
  const jobpost = await startJobpost(overrides)
  const user = await jobpost.auth.createUser({ email, password: PASSWORD, roles: ['administrator'] })
  const { token } = await callApi<{ token: string }>(jobpost.url, undefined, 'POST', '/auth/login', { email, password: PASSWORD })
  return { jobpost, adminId: user.id, token, browser: await launchChromium() }
}
