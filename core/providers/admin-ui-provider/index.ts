import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import express, { Router, type RequestHandler } from 'express'
import type { CoreHooks } from '../../hooks/pluginHooks.js'

/** Where `npm run build` writes the admin UI (admin-ui/vite.config.ts). */
export const DEFAULT_ADMIN_UI_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../admin-ui/dist')
export const ADMIN_UI_PATH = '/admin'

export interface AdminUiOptions {
  distDir?: string
}

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Jobpost admin: not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto; line-height: 1.5">
<h1>The admin UI has not been built</h1>
<p>Run <code>npm run build</code> in the Jobpost folder, then reload this page. The REST API under
<code>/api/v1</code> and the WebSocket at <code>/ws</code> work without it.</p>
</body></html>
`

/**
 * Serves the built single-page app: hashed assets with a long cache, and index.html (never cached)
 * for every other GET under /admin, so that client-side routes survive a reload. While the build is
 * missing, /admin answers 503 with a page that says to run `npm run build`; the server still starts.
 */
export function createAdminUiRouter(options: AdminUiOptions = {}): Router {
  const distDir = options.distDir ?? DEFAULT_ADMIN_UI_DIST
  const indexFile = path.join(distDir, 'index.html')
  const router = Router()

  router.use(
    '/assets',
    express.static(path.join(distDir, 'assets'), { immutable: true, maxAge: '1y', index: false, fallthrough: true }),
    // A missing asset is a 404, not the HTML page (a browser would try to run it as a script).
    ((_req, res) => {
      res.status(404).type('text/plain').send('Not found')
    }) satisfies RequestHandler,
  )
  router.use(express.static(distDir, { index: false, redirect: false, fallthrough: true, maxAge: 0 }))

  const sendIndex: RequestHandler = (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next()
    if (!fs.existsSync(indexFile)) {
      res.status(503).setHeader('Cache-Control', 'no-store').type('html').send(NOT_BUILT_PAGE)
      return
    }
    res.setHeader('Cache-Control', 'no-cache')
    res.sendFile(indexFile, (error) => {
      if (error) next(error)
    })
  }
  router.use(sendIndex)
  return router
}

/** The core provider: mounts the admin UI at /admin through the `http_mounts` filter. */
export default function adminUiProvider({ hooks, options = {} }: { hooks: Pick<CoreHooks, 'addFilter'>; options?: AdminUiOptions }): void {
  const router = createAdminUiRouter(options)
  hooks.addFilter('http_mounts', (mounts: unknown) => [
    ...(mounts as { path: string; handler: RequestHandler | Router }[]),
    { path: ADMIN_UI_PATH, handler: router },
  ])
}
