import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { startJobpost, userWithRole, type TestUser } from '../support/harness.js'
import { errorEnvelope, jobCount, snapshot } from './support/jobs.js'

/**
 * Hostile input over REST: every case gets a clear 4xx in the contract's envelope (never a 500),
 * and nothing stored changes.
 */
describe('REST: hostile input is refused with a clear 4xx and changes nothing', () => {
  let jobpost: Jobpost
  let admin: TestUser
  let jobId: string
  const auth = () => ({ authorization: `Bearer ${admin.token}` })
  const api = () => request(jobpost.app)

  beforeAll(async () => {
    jobpost = await startJobpost()
    admin = await userWithRole(jobpost, 'administrator')
    const created = await api().post('/api/v1/jobs').set(auth()).send({ name: 'Victim', type: 'victim' }).expect(201)
    jobId = created.body.data.jobId
  })
  afterAll(() => jobpost.close())

  /** Sends the request, expects the status + code, and that the victim job and the job count did not move. */
  async function refused(
    send: () => request.Test,
    status: number,
    code?: string,
  ): Promise<{ message: string }> {
    const before = await snapshot(jobpost, jobId)
    const count = await jobCount(jobpost)
    const res = await send()
    const seen = errorEnvelope(res)
    expect(seen, `${res.status} ${JSON.stringify(res.body).slice(0, 300)}`).toMatchObject({ status, success: false, json: true })
    if (code) expect(seen.code).toBe(code)
    expect(res.body.error.message).toEqual(expect.any(String))
    expect(await snapshot(jobpost, jobId)).toEqual(before)
    expect(await jobCount(jobpost)).toBe(count)
    return res.body.error
  }

  describe('POST /api/v1/jobs bodies', () => {
    it('unknown fields → 400 naming the field', async () => {
      const error = await refused(() => api().post('/api/v1/jobs').set(auth()).send({ name: 'x', type: 't', isAdmin: true }), 400, 'VALIDATION_FAILED')
      expect(error.message).toMatch(/isAdmin/)
      await refused(() => api().post('/api/v1/jobs').set(auth()).send({ name: 'x', type: 't', status: 'completed' }), 400, 'VALIDATION_FAILED')
      await refused(() => api().post('/api/v1/jobs').set(auth()).send({ name: 'x', type: 't', createdBy: 999 }), 400, 'VALIDATION_FAILED')
      await refused(() => api().post('/api/v1/jobs').set(auth()).send({ name: 'x', type: 't', attempts: 99 }), 400, 'VALIDATION_FAILED')
    })

    it('__proto__ / constructor / prototype payloads → 400, and no object prototype is polluted', async () => {
      const bodies = [
        '{"name":"x","type":"t","__proto__":{"polluted":"yes"}}',
        '{"name":"x","type":"t","metadata":{"__proto__":{"polluted":"yes"}}}',
        '{"name":"x","type":"t","metadata":{"a":{"b":{"__proto__":{"polluted":"yes"}}}}}',
        '{"name":"x","type":"t","metadata":{"constructor":{"prototype":{"polluted":"yes"}}}}',
        '{"name":"x","type":"t","data":[{"__proto__":{"polluted":"yes"}}]}',
        '{"name":"x","type":"t","data":{"prototype":1}}',
      ]
      for (const body of bodies) {
        await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json').send(body), 400, 'VALIDATION_FAILED')
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      expect(Object.prototype).not.toHaveProperty('polluted')
    })

    it('a body over the limit → 413; metadata and data over their own limits → 400', async () => {
      const huge = { name: 'x', type: 't', metadata: { blob: 'a'.repeat(300 * 1024) } }
      await refused(() => api().post('/api/v1/jobs').set(auth()).send(huge), 413, 'PAYLOAD_TOO_LARGE')
      const bigMeta = { name: 'x', type: 't', metadata: { blob: 'a'.repeat(70 * 1024) } }
      await refused(() => api().post('/api/v1/jobs').set(auth()).send(bigMeta), 400, 'VALIDATION_FAILED')
      // 10 MB announced, 10 MB streamed: refused without reading it all into a job.
      const tenMb = JSON.stringify({ name: 'x', type: 't', data: 'b'.repeat(10 * 1024 * 1024) })
      await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json').send(tenMb), 413, 'PAYLOAD_TOO_LARGE')
    })

    it('deeply nested JSON (objects and arrays, up to 100k levels) → 400, no stack overflow', async () => {
      for (const depth of [40, 1000, 100_000]) {
        const nestedObject = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
        const nestedArray = '['.repeat(depth) + ']'.repeat(depth)
        for (const nested of [nestedObject, nestedArray]) {
          for (const field of ['metadata', 'data']) {
            if (field === 'metadata' && nested.startsWith('[')) continue
            const body = `{"name":"x","type":"t","${field}":${nested}}`
            const res = await api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json').send(body)
            expect([400, 413], `${field} depth ${depth}: ${res.status}`).toContain(res.status)
            expect(res.body.success).toBe(false)
          }
        }
      }
      expect(await jobCount(jobpost)).toBe(1)
    })

    it('wrong content types → 415; broken JSON → 400 INVALID_JSON; non-object JSON → 400', async () => {
      const json = JSON.stringify({ name: 'x', type: 't' })
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/html']) {
        await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', type).send(json), 415, 'UNSUPPORTED_MEDIA_TYPE')
      }
      await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json; charset=utf-7').send(json), 415)
      await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json').send('{"name":"x",'), 400, 'INVALID_JSON')
      await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json').send("{'name':'x'}"), 400, 'INVALID_JSON')
      for (const body of ['[]', '"job"', '42', 'null', 'true', '[{"name":"x","type":"t"}]']) {
        await refused(() => api().post('/api/v1/jobs').set(auth()).set('content-type', 'application/json').send(body), 400)
      }
      // A form-encoded CSRF-style post (what a foreign HTML form can send) is refused too.
      await refused(() => api().post('/api/v1/jobs').set(auth()).type('form').send('name=x&type=t'), 415)
    })

    it('wrong types and out-of-range values → 400', async () => {
      const bad: Record<string, unknown>[] = [
        { name: '', type: 't' },
        { name: '   ', type: 't' },
        { name: 'x'.repeat(201), type: 't' },
        { name: 42, type: 't' },
        { name: 'x', type: '../../etc/passwd' },
        { name: 'x', type: "t' OR 1=1 --" },
        { name: 'x', type: 't', priority: 1e9 },
        { name: 'x', type: 't', priority: 1.5 },
        { name: 'x', type: 't', priority: '1' },
        { name: 'x', type: 't', maxAttempts: 0 },
        { name: 'x', type: 't', maxAttempts: 1e9 },
        { name: 'x', type: 't', timeout: -1 },
        { name: 'x', type: 't', timeout: 1e12 },
        { name: 'x', type: 't', runAt: 'tomorrow' },
        { name: 'x', type: 't', runAt: 12345 },
        { name: 'x', type: 't', showNotification: 'yes' },
        { name: 'x', type: 't', metadata: [] },
        { name: 'x', type: 't', metadata: 'str' },
      ]
      for (const body of bad) await refused(() => api().post('/api/v1/jobs').set(auth()).send(body), 400, 'VALIDATION_FAILED')
    })

    it('state-change routes refuse bodies with fields, and non-JSON bodies', async () => {
      await refused(() => api().post(`/api/v1/jobs/${jobId}/cancel`).set(auth()).send({ force: true }), 400, 'VALIDATION_FAILED')
      await refused(() => api().post(`/api/v1/jobs/${jobId}/pause`).set(auth()).set('content-type', 'text/plain').send('x'), 415)
      await refused(() => api().post(`/api/v1/jobs/${jobId}/priority`).set(auth()).send({ priority: 'high' }), 400)
      await refused(() => api().post(`/api/v1/jobs/${jobId}/priority`).set(auth()).send({ priority: 5, extra: 1 }), 400)
    })
  })

  describe('ids and query parameters', () => {
    const injections = ['1 OR 1=1', "1' OR '1'='1", '1; DROP TABLE posts; --', '../../etc/passwd', '%00', 'x'.repeat(5000), '1e9', '-1', '{}']

    it('job ids that are not UUIDs → 400 on every :jobId route; unknown UUIDs → 404', async () => {
      for (const raw of injections) {
        const id = encodeURIComponent(raw)
        await refused(() => api().get(`/api/v1/jobs/${id}`).set(auth()), 400, 'VALIDATION_FAILED')
        await refused(() => api().get(`/api/v1/jobs/${id}/export`).set(auth()), 400, 'VALIDATION_FAILED')
        await refused(() => api().post(`/api/v1/jobs/${id}/cancel`).set(auth()), 400, 'VALIDATION_FAILED')
        await refused(() => api().delete(`/api/v1/jobs/${id}`).set(auth()), 400, 'VALIDATION_FAILED')
      }
      await refused(() => api().get('/api/v1/jobs/00000000-0000-4000-8000-000000000000').set(auth()), 404, 'JOB_NOT_FOUND')
      // The posts table is still there, with the victim in it.
      await api().get(`/api/v1/jobs/${jobId}`).set(auth()).expect(200)
    })

    it('limit and offset outside their ranges, or repeated → 400', async () => {
      for (const query of [
        'limit=1e9',
        'limit=1000000000',
        'limit=0',
        'limit=-1',
        'limit=501',
        'limit=abc',
        'limit=1.5',
        'limit=',
        'limit=Infinity',
        'limit=NaN',
        'limit=0x10',
        'limit=1&limit=2',
        'limit[]=1',
        'offset=-1',
        'offset=1e3',
        'offset=abc',
        'type=a&type=b',
        'search=a&search=b',
        'status=bogus',
        'status=pending,bogus',
        'status=pending&status=bogus',
        'unknown=1',
        '__proto__[polluted]=yes',
        'constructor[prototype][polluted]=yes',
        `search=${'s'.repeat(201)}`,
      ]) {
        await refused(() => api().get(`/api/v1/jobs?${query}`).set(auth()), 400, 'VALIDATION_FAILED')
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    })

    it('the edges of the ranges, and repeated status, are fine', async () => {
      const res = await api().get('/api/v1/jobs?limit=500&offset=0').set(auth()).expect(200)
      expect(res.body.meta).toMatchObject({ limit: 500, offset: 0, total: 1 })
      await api().get('/api/v1/jobs?limit=1').set(auth()).expect(200)
      const both = await api().get('/api/v1/jobs?status=pending&status=running,failed').set(auth()).expect(200)
      expect(both.body.data.map((job: { jobId: string }) => job.jobId)).toEqual([jobId])
      // LIKE wildcards are searched for literally.
      const like = await api().get(`/api/v1/jobs?search=${encodeURIComponent("%' OR 1=1 --")}`).set(auth()).expect(200)
      expect(like.body.meta.total).toBe(0)
      const percent = await api().get('/api/v1/jobs?search=%25').set(auth()).expect(200)
      expect(percent.body.meta.total).toBe(0)
    })

    it('cleanup: daysOld 0, -1, abc, Infinity, 1e3, 3651, empty, missing or repeated → 400, and nothing is deleted', async () => {
      // A finished job, completed long ago by the clock's reckoning, that a bad daysOld must not delete.
      const old = await jobpost.pluginHooks('test').createJob({ name: 'Old', type: 'old' })
      await old.start()
      await old.complete()
      const before = await snapshot(jobpost, old.jobId)
      for (const query of ['daysOld=0', 'daysOld=-1', 'daysOld=abc', 'daysOld=Infinity', 'daysOld=1e3', 'daysOld=3651', 'daysOld=', '', 'daysOld=1&daysOld=2', 'daysOld=1.5', 'daysOld=%201', 'daysOld=1&x=1']) {
        await refused(() => api().delete(`/api/v1/jobs/cleanup?${query}`).set(auth()), 400, 'VALIDATION_FAILED')
      }
      expect(await snapshot(jobpost, old.jobId)).toEqual(before)
      const ok = await api().delete('/api/v1/jobs/cleanup?daysOld=1').set(auth()).expect(200)
      expect(ok.body.data).toEqual({ deleted: 0 })
      expect(await snapshot(jobpost, old.jobId)).toEqual(before)
      await jobpost.jobs.deleteJob(old.jobId)
    })

    it('export: an unknown format → 400; the download is an attachment with a JSON or CSV type', async () => {
      await refused(() => api().get(`/api/v1/jobs/${jobId}/export?format=html`).set(auth()), 400, 'VALIDATION_FAILED')
      await refused(() => api().get(`/api/v1/jobs/${jobId}/export?format=csv&format=json`).set(auth()), 400, 'VALIDATION_FAILED')
      const res = await api().get(`/api/v1/jobs/${jobId}/export?format=json`).set(auth()).expect(200)
      expect(res.headers['content-disposition']).toMatch(/^attachment; filename="job-[0-9a-f-]+\.json"$/)
      expect(res.headers['x-content-type-options']).toBe('nosniff')
    })

    it('40 concurrent cancel / pause / resume / retry / delete calls on one job: 200 or 409 each, a consistent end state', async () => {
      const created = await api().post('/api/v1/jobs').set(auth()).send({ name: 'Contended', type: 'contended' }).expect(201)
      const id = created.body.data.jobId
      const actions = ['cancel', 'pause', 'resume', 'retry', 'delete'] as const
      const calls = Array.from({ length: 40 }, (_, i) => actions[i % actions.length]!)
      const results = await Promise.all(
        calls.map(async (action) => {
          const res = action === 'delete' ? await api().delete(`/api/v1/jobs/${id}`).set(auth()) : await api().post(`/api/v1/jobs/${id}/${action}`).set(auth())
          return { action, status: res.status }
        }),
      )
      expect(results.filter((r) => ![200, 404, 409].includes(r.status))).toEqual([])
      const final = await jobpost.jobs.getJobRecord(id)
      const deleted = results.some((r) => r.action === 'delete' && r.status === 200)
      if (deleted) expect(final).toBeNull()
      else {
        expect(['pending', 'paused', 'cancelled']).toContain(final!.status)
        await jobpost.jobs.cancel(id).catch(() => undefined)
        await jobpost.jobs.deleteJob(id)
      }
      // 404 only after a successful delete.
      if (!deleted) expect(results.some((r) => r.status === 404)).toBe(false)
    })

    it('unknown API routes → 404 envelope; unknown methods never 500', async () => {
      await refused(() => api().get('/api/v1/nope').set(auth()), 404, 'NOT_FOUND')
      const res = await api().put(`/api/v1/jobs/${jobId}`).set(auth()).send({ name: 'changed' })
      expect(res.status).toBe(404)
      expect(await snapshot(jobpost, jobId)).toMatchObject({ name: 'Victim' })
    })
  })

  describe('HTML and SVG', () => {
    it('HTML in names, descriptions, metadata and error messages is stored as text and returned as the same JSON string', async () => {
      const html = `<img src=x onerror="alert(1)"><script>alert('x')</script></title>"'&`
      const created = await api()
        .post('/api/v1/jobs')
        .set(auth())
        .send({ name: html, type: 'html', description: html, source: html.slice(0, 100), metadata: { note: html } })
        .expect(201)
      expect(created.headers['content-type']).toMatch(/^application\/json/)
      expect(created.headers['x-content-type-options']).toBe('nosniff')
      const job = created.body.data
      expect(job).toMatchObject({ name: html, description: html, source: html.slice(0, 100).trim(), metadata: { note: html } })
      const handle = jobpost.jobs.handle(job.jobId)
      await handle.start()
      await handle.fail(html)
      const read = await api().get(`/api/v1/jobs/${job.jobId}`).set(auth()).expect(200)
      expect(read.body.data.errorMessage).toBe(html)
      expect(read.body.data.name).toBe(html)
      // Served as JSON that browsers may not sniff into HTML.
      expect(read.headers['content-type']).toMatch(/^application\/json/)
      expect(read.headers['x-content-type-options']).toBe('nosniff')
      const listed = await api().get(`/api/v1/jobs?search=${encodeURIComponent('<script>')}`).set(auth()).expect(200)
      expect(listed.body.data.map((j: { jobId: string }) => j.jobId)).toEqual([job.jobId])
      await jobpost.jobs.deleteJob(job.jobId)
    })

    const svgCases: [string, string, RegExp][] = [
      ['script', `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><circle r="4"/></svg>`, /script|alert/i],
      ['onload', `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4" onclick="alert(2)" onmouseover="x()"/></svg>`, /on\w+=|alert/i],
      ['foreignObject', `<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><iframe src="javascript:alert(1)"></iframe><body onload="alert(1)"/></foreignObject></svg>`, /foreignObject|iframe|javascript|alert/i],
      ['animate', `<svg xmlns="http://www.w3.org/2000/svg"><a><animate attributeName="href" values="javascript:alert(1)"/><text>x</text></a><set attributeName="onmouseover" to="alert(1)"/><animateTransform/><animateMotion/></svg>`, /animate|<set|javascript|alert/i],
      ['external image', `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image href="https://evil.example/track.png"/><image xlink:href="http://evil.example/x.svg"/><use href="https://evil.example/sprite.svg#i"/><rect fill="url(https://evil.example/p)" width="1" height="1"/></svg>`, /evil\.example|<image/i],
      ['javascript href', `<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><circle r="3"/></a><use href="data:image/svg+xml;base64,PHN2Zz4="/></svg>`, /javascript|data:/i],
      ['style', `<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://evil.example/x.css); *{background:url(https://evil.example/y)}</style><circle style="background:url(https://evil.example/z)" r="1"/></svg>`, /evil\.example|<style|style=/i],
      ['XXE', `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>`, /root:|ENTITY|DOCTYPE|passwd/i],
      ['billion laughs', `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]><svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>`, /lollollol|ENTITY/i],
      ['html smuggling', `<svg xmlns="http://www.w3.org/2000/svg"></svg><img src=x onerror=alert(1)><svg><g/></svg>`, /<img|onerror/i],
      ['entity-encoded script', `<svg xmlns="http://www.w3.org/2000/svg"><a href="&#106;avascript:alert(1)"><text>x</text></a></svg>`, /javascript|alert/i],
    ]

    it.each(svgCases)('SVG with %s is stored sanitised (REST)', async (_label, svg, forbidden) => {
      const started = Date.now()
      const res = await api().post('/api/v1/jobs').set(auth()).send({ name: 'svg', type: 'svg', iconSvg: svg })
      expect(Date.now() - started).toBeLessThan(5000)
      expect(res.status).toBe(201)
      const stored = res.body.data.iconSvg as string | null
      if (stored !== null) {
        expect(stored).toMatch(/^<svg[\s>]/)
        expect(stored).not.toMatch(forbidden)
      }
      const read = await api().get(`/api/v1/jobs/${res.body.data.jobId}`).set(auth()).expect(200)
      expect(read.body.data.iconSvg).toBe(stored)
      await jobpost.jobs.cancel(res.body.data.jobId)
      await jobpost.jobs.deleteJob(res.body.data.jobId)
    })

    it('a harmless SVG keeps its drawing', async () => {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path d="M1 1h22v22H1z" fill="url(#g)"/><defs><linearGradient id="g"/></defs></svg>`
      const res = await api().post('/api/v1/jobs').set(auth()).send({ name: 'svg', type: 'svg', iconSvg: svg }).expect(201)
      expect(res.body.data.iconSvg).toMatch(/<path d="M1 1h22v22H1z" fill="url\(#g\)"/)
      await jobpost.jobs.cancel(res.body.data.jobId)
      await jobpost.jobs.deleteJob(res.body.data.jobId)
    })

    it('a 5 MB SVG → 413 over REST, 400 INVALID_SVG through the plugin API, nothing stored', async () => {
      const fiveMb = `<svg xmlns="http://www.w3.org/2000/svg">${'<circle r="1"/>'.repeat((5 * 1024 * 1024) / 15)}</svg>`
      await refused(() => api().post('/api/v1/jobs').set(auth()).send({ name: 'big', type: 'svg', iconSvg: fiveMb }), 413, 'PAYLOAD_TOO_LARGE')
      const count = await jobCount(jobpost)
      await expect(jobpost.pluginHooks('test').createJob({ name: 'big', type: 'svg', iconSvg: fiveMb })).rejects.toMatchObject({
        code: 'INVALID_SVG',
        status: 400,
      })
      // Over the icon limit (32 KB), inside the body limit: 400 INVALID_SVG as well.
      const seventyKb = `<svg xmlns="http://www.w3.org/2000/svg">${'<g/>'.repeat(70 * 256)}</svg>`
      await refused(() => api().post('/api/v1/jobs').set(auth()).send({ name: 'big', type: 'svg', iconSvg: seventyKb }), 400, 'INVALID_SVG')
      expect(await jobCount(jobpost)).toBe(count)
    })
  })
})
