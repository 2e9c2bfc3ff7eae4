import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import express from 'express'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_ADMIN_UI_DIST, createAdminUiRouter } from '../../core/providers/admin-ui-provider/index.js'
import { startJobpost } from '../support/harness.js'

const distIndex = path.join(DEFAULT_ADMIN_UI_DIST, 'index.html')

describe('the admin UI provider', () => {
  let jobpost: Awaited<ReturnType<typeof startJobpost>>
  beforeAll(async () => {
    jobpost = await startJobpost({}, { listen: false })
  })
  afterAll(() => jobpost.close())

  it('answers 503 with "run npm run build" while the build is missing, without crashing', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-admin-'))
    const app = express().use('/admin', createAdminUiRouter({ distDir: path.join(empty, 'dist') }))
    for (const url of ['/admin', '/admin/', '/admin/jobs']) {
      const res = await request(app).get(url).expect(503)
      expect(res.headers['content-type']).toMatch(/text\/html/)
      expect(res.text).toContain('npm run build')
    }
    fs.rmSync(empty, { recursive: true })
  })

  describe('with the build (npm run build, run by `npm test` first)', () => {
    beforeAll(() => {
      if (!fs.existsSync(distIndex)) throw new Error('admin-ui/dist is missing: run `npm run build` (npm test runs it first)')
    })

    it('serves index.html at /admin and for client-side routes, under the CSP, with no inline script', async () => {
      for (const url of ['/admin', '/admin/', '/admin/jobs', '/admin/login?redirect=%2Fjobs']) {
        const res = await request(jobpost.app).get(url).expect(200)
        expect(res.headers['content-type']).toMatch(/text\/html/)
        expect(res.headers['cache-control']).toBe('no-cache')
        expect(res.headers['content-security-policy']).toContain("script-src 'self'")
        expect(res.text).toContain('<div id="app"></div>')
      }
      const html = fs.readFileSync(distIndex, 'utf8')
      const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)]
      expect(scripts.length).toBeGreaterThan(0)
      for (const [tag, body] of scripts) {
        expect(tag).toMatch(/\ssrc="\/admin\/assets\/[^"]+\.js"/)
        expect(body!.trim()).toBe('')
      }
    })

    it('serves hashed assets with a long cache, and 404 (not the page) for a missing asset', async () => {
      const html = fs.readFileSync(distIndex, 'utf8')
      const script = /src="(\/admin\/assets\/[^"]+\.js)"/.exec(html)![1]!
      const res = await request(jobpost.app).get(script).expect(200)
      expect(res.headers['content-type']).toMatch(/javascript/)
      expect(res.headers['cache-control']).toContain('immutable')
      await request(jobpost.app).get('/admin/assets/nothing-here.js').expect(404)
    })

    it('leaves the API alone', async () => {
      const res = await request(jobpost.app).get('/api/v1/jobs').expect(401)
      expect(res.body.success).toBe(false)
    })
  })
})
