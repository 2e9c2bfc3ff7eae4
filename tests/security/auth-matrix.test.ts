import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { connectWs, PASSWORD, startJobpost, upgradeStatus, userWithRole, type TestUser } from '../support/harness.js'
import { listRoutes, type RouteInfo } from './support/routes.js'

/** Rate windows are aligned to multiples of their length: a day-long one is not crossed mid-test. */
const DAY_MS = 24 * 3600 * 1000

type Started = Jobpost & { url: string }

type Who = 'anonymous' | 'revoked' | 'subscriber' | 'editor' | 'administrator'
const WHO: Who[] = ['anonymous', 'revoked', 'subscriber', 'editor', 'administrator']
const ROLES = ['subscriber', 'editor', 'administrator'] as const

/** Routes anyone may call without a token (every other route, /api or not, must answer 401). */
const PUBLIC = new Set(['POST /api/v1/auth/login', 'GET /api/v1/openapi.json'])

interface Expectation {
  /** Request details; `:jobId` is a fresh job created by `owner` for each request. */
  owner?: 'administrator' | 'subscriber'
  query?: string
  body?: unknown
  /** Allowed statuses per authenticated role (anonymous and revoked always 401 on non-public routes). */
  roles: Record<(typeof ROLES)[number], number[]>
}

const all = (statuses: number[]) => ({ subscriber: statuses, editor: statuses, administrator: statuses })

/**
 * What the contract (../shared/API.md) says each known route answers, for a job created by the
 * administrator (subscribers do not see it: 404; editors see it but may not change it: 403).
 */
const KNOWN: Record<string, Expectation> = {
  'POST /api/v1/auth/logout': { roles: all([200]) },
  'GET /api/v1/auth/me': { roles: all([200]) },
  'POST /api/v1/auth/ws-ticket': { roles: all([201]) },
  'GET /api/v1/jobs': { roles: all([200]) },
  'GET /api/v1/jobs/stats': { roles: all([200]) },
  'POST /api/v1/jobs': { body: { name: 'Matrix', type: 'matrix' }, roles: all([201]) },
  'DELETE /api/v1/jobs/cleanup': { query: 'daysOld=30', roles: { subscriber: [403], editor: [403], administrator: [200] } },
  'GET /api/v1/jobs/:jobId': { roles: { subscriber: [404], editor: [200], administrator: [200] } },
  'GET /api/v1/jobs/:jobId/export': { roles: { subscriber: [404], editor: [200], administrator: [200] } },
  'POST /api/v1/jobs/:jobId/cancel': { roles: { subscriber: [404], editor: [403], administrator: [200] } },
  // The job is tracked (no processor) and its creator gave no onPause: 409 NOT_PAUSABLE (API.md).
  'POST /api/v1/jobs/:jobId/pause': { roles: { subscriber: [404], editor: [403], administrator: [200, 409] } },
  // A pending job cannot be resumed or retried: the caller may act, the state machine says no.
  'POST /api/v1/jobs/:jobId/resume': { roles: { subscriber: [404], editor: [403], administrator: [409] } },
  'POST /api/v1/jobs/:jobId/retry': { roles: { subscriber: [404], editor: [403], administrator: [409] } },
  'POST /api/v1/jobs/:jobId/priority': { body: { priority: 5 }, roles: { subscriber: [404], editor: [403], administrator: [200] } },
  // delete_jobs is checked first; a pending job cannot be deleted.
  'DELETE /api/v1/jobs/:jobId': { roles: { subscriber: [403], editor: [403], administrator: [409] } },
  'POST /api/v1/plugins/example-job-plugin/run': { body: { kind: 'import' }, roles: { subscriber: [403], editor: [403], administrator: [201] } },
  // Prometheus metrics: read_jobs (the scraper gets an editor account).
  'GET /metrics': { roles: { subscriber: [403], editor: [200], administrator: [200] } },
}

/** The same routes on a job the subscriber created: its creator may control it (create_jobs), not delete it. */
const OWN_JOB: Record<string, number[]> = {
  'GET /api/v1/jobs/:jobId': [200],
  'GET /api/v1/jobs/:jobId/export': [200],
  'POST /api/v1/jobs/:jobId/cancel': [200],
  'POST /api/v1/jobs/:jobId/pause': [200, 409],
  // Its body sets priority 5: above 0 needs manage_jobs (API.md), even on one's own job.
  'POST /api/v1/jobs/:jobId/priority': [403],
  'DELETE /api/v1/jobs/:jobId': [403],
}

describe('auth matrix: every route × {anonymous, revoked token, subscriber, editor, administrator}', () => {
  let jobpost: Started
  const users = {} as Record<(typeof ROLES)[number], TestUser>
  let revokedToken: string
  let routes: RouteInfo[]

  beforeAll(async () => {
    jobpost = await startJobpost({ activePlugins: ['example-job-plugin'] })
    for (const role of ROLES) users[role] = await userWithRole(jobpost, role)
    const doomed = await userWithRole(jobpost, 'administrator')
    await request(jobpost.app).post('/api/v1/auth/logout').set('authorization', `Bearer ${doomed.token}`).expect(200)
    revokedToken = doomed.token
    routes = listRoutes(jobpost.app)
  })
  afterAll(() => jobpost.close())

  async function tokenFor(who: Who, route: string): Promise<string | undefined> {
    if (who === 'anonymous') return undefined
    if (who === 'revoked') return revokedToken
    // Logout revokes the token it is called with: give it a fresh one.
    if (route === 'POST /api/v1/auth/logout') {
      const res = await request(jobpost.app).post('/api/v1/auth/login').send({ email: users[who].email, password: PASSWORD }).expect(200)
      return res.body.data.token
    }
    return users[who].token
  }

  async function call(route: RouteInfo, who: Who, options: { owner?: 'administrator' | 'subscriber'; query?: string; body?: unknown } = {}) {
    let path = route.path
    if (path.includes(':jobId')) {
      const owner = users[options.owner ?? 'administrator']
      const job = await jobpost.pluginHooks('matrix').createJob({ name: 'Target', type: 'target', createdBy: owner.id })
      path = path.replace(':jobId', job.jobId)
    }
    path = path.replace(/:(\w+)/g, '00000000-0000-4000-8000-000000000000')
    if (options.query) path += `?${options.query}`
    const key = `${route.method} ${route.path}`
    const token = await tokenFor(who, key)
    let req = (request(jobpost.app) as any)[route.method.toLowerCase()](path) as request.Test
    if (token) req = req.set('authorization', `Bearer ${token}`)
    if (options.body !== undefined) req = req.send(options.body as object)
    const res = await req
    return { status: res.status, body: res.body }
  }

  it('finds the routes of the contract (and any added since) on the running app', () => {
    const keys = routes.map((route) => `${route.method} ${route.path}`)
    for (const known of Object.keys(KNOWN)) expect(keys, known).toContain(known)
    expect(keys).toContain('POST /api/v1/auth/login')
  })

  it('anonymous and revoked tokens get 401 on every non-public route; nobody ever gets a 500', async () => {
    const failures: string[] = []
    for (const route of routes) {
      const key = `${route.method} ${route.path}`
      const known = KNOWN[key]
      for (const who of WHO) {
        const res = await call(route, who, known ?? { body: route.method === 'GET' || route.method === 'DELETE' ? undefined : {} })
        const label = `${key} as ${who} → ${res.status}`
        if (res.status >= 500) failures.push(`${label} (server error)`)
        if (res.status >= 400 && res.body?.success !== false && route.path.startsWith('/api/')) failures.push(`${label} (no error envelope)`)
        if (PUBLIC.has(key)) continue
        if (who === 'anonymous' || who === 'revoked') {
          if (res.status !== 401) failures.push(`${label} (expected 401)`)
          else if (res.body?.error?.code !== 'UNAUTHENTICATED') failures.push(`${label} (code ${res.body?.error?.code})`)
        } else if (res.status === 401) {
          failures.push(`${label} (a valid token was refused)`)
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('each known route answers each role as the contract says', async () => {
    const failures: string[] = []
    for (const [key, expectation] of Object.entries(KNOWN)) {
      const [method, path] = key.split(' ') as [string, string]
      for (const role of ROLES) {
        const res = await call({ method, path }, role, expectation)
        if (!expectation.roles[role].includes(res.status)) {
          failures.push(`${key} as ${role} → ${res.status} ${JSON.stringify(res.body?.error ?? '')}, expected ${expectation.roles[role].join('|')}`)
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('a subscriber controls the jobs it created, but may not delete them; editors may not control them', async () => {
    const failures: string[] = []
    for (const [key, statuses] of Object.entries(OWN_JOB)) {
      const [method, path] = key.split(' ') as [string, string]
      const body = KNOWN[key]?.body
      const own = await call({ method, path }, 'subscriber', { owner: 'subscriber', body })
      if (!statuses.includes(own.status)) failures.push(`${key} own job as subscriber → ${own.status}, expected ${statuses.join('|')}`)
      if (method === 'POST') {
        const editor = await call({ method, path }, 'editor', { owner: 'subscriber', body })
        if (editor.status !== 403) failures.push(`${key} subscriber's job as editor → ${editor.status}, expected 403`)
      }
    }
    expect(failures).toEqual([])
  })

  it('public routes stay public', async () => {
    const login = await request(jobpost.app).post('/api/v1/auth/login').send({})
    expect(login.status).toBe(400)
    const wrong = await request(jobpost.app).post('/api/v1/auth/login').send({ email: users.editor.email, password: 'not the password' })
    expect(wrong.status).toBe(401)
  })

  it('bearer tokens only: cookies and odd Authorization headers authenticate nobody (so no CSRF by cookie)', async () => {
    const token = users.administrator.token
    for (const headers of [
      { cookie: `token=${token}; session=${token}; jwt=${token}` },
      { authorization: token },
      { authorization: `Basic ${Buffer.from(`${users.administrator.email}:${PASSWORD}`).toString('base64')}` },
      { authorization: `Bearer ${token} ${token}` },
      { authorization: `Bearer ${token.slice(0, -1)}` },
      { authorization: 'Bearer ' },
      { authorization: `Bearer ${'A'.repeat(10_000)}` },
    ]) {
      const res = await request(jobpost.app).get('/api/v1/jobs').set(headers as unknown as Record<string, string>)
      expect(res.status, JSON.stringify(headers).slice(0, 60)).toBe(401)
    }
    const lower = await request(jobpost.app).get('/api/v1/jobs').set('authorization', `bearer ${token}`)
    expect(lower.status).toBe(200)
  })

  it('CORS: a foreign origin gets no Access-Control-Allow-Origin, preflight included', async () => {
    const preflight = await request(jobpost.app)
      .options('/api/v1/jobs')
      .set('origin', 'https://evil.example')
      .set('access-control-request-method', 'POST')
      .set('access-control-request-headers', 'authorization, content-type')
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined()
    const get = await request(jobpost.app).get('/api/v1/jobs').set('origin', 'https://evil.example').set('authorization', `Bearer ${users.administrator.token}`)
    expect(get.headers['access-control-allow-origin']).toBeUndefined()
  })
})

describe('per-user visibility over REST and WebSocket', () => {
  let jobpost: Started
  let alice: TestUser
  let bob: TestUser
  let editor: TestUser
  let admin: TestUser
  const as = (user: TestUser) => ({ authorization: `Bearer ${user.token}` })

  beforeAll(async () => {
    jobpost = await startJobpost()
    alice = await userWithRole(jobpost, 'subscriber')
    bob = await userWithRole(jobpost, 'subscriber')
    editor = await userWithRole(jobpost, 'editor')
    admin = await userWithRole(jobpost, 'administrator')
  })
  afterAll(() => jobpost.close())

  it('REST: list, stats, get, export and actions show a subscriber only its own jobs', async () => {
    const mine = await request(jobpost.app).post('/api/v1/jobs').set(as(alice)).send({ name: 'Alice job', type: 'secret-a' }).expect(201)
    const theirs = await request(jobpost.app).post('/api/v1/jobs').set(as(bob)).send({ name: 'Bob job', type: 'secret-b' }).expect(201)
    const aliceId = mine.body.data.jobId
    const bobId = theirs.body.data.jobId

    const list = await request(jobpost.app).get('/api/v1/jobs').set(as(alice)).expect(200)
    expect(list.body.data.map((job: { jobId: string }) => job.jobId)).toEqual([aliceId])
    expect(list.body.meta.total).toBe(1)
    const byType = await request(jobpost.app).get('/api/v1/jobs?type=secret-b').set(as(alice)).expect(200)
    expect(byType.body.meta.total).toBe(0)
    const search = await request(jobpost.app).get('/api/v1/jobs?search=Bob').set(as(alice)).expect(200)
    expect(search.body.meta.total).toBe(0)
    const stats = await request(jobpost.app).get('/api/v1/jobs/stats').set(as(alice)).expect(200)
    expect(stats.body.data.total).toBe(1)
    expect(stats.body.data.byType).toEqual({ 'secret-a': 1 })

    // Bob's job looks exactly like a job that does not exist.
    const unknown = await request(jobpost.app).get('/api/v1/jobs/00000000-0000-4000-8000-000000000000').set(as(alice))
    for (const path of [`/api/v1/jobs/${bobId}`, `/api/v1/jobs/${bobId}/export`]) {
      const res = await request(jobpost.app).get(path).set(as(alice))
      expect(res.status).toBe(404)
      expect(res.body.error.code).toBe(unknown.body.error.code)
    }
    for (const action of ['cancel', 'pause', 'resume', 'retry']) {
      await request(jobpost.app).post(`/api/v1/jobs/${bobId}/${action}`).set(as(alice)).expect(404)
    }
    expect((await jobpost.jobs.getJob(bobId))!.status).toBe('pending')

    // Editors (read_jobs) and administrators see both.
    for (const user of [editor, admin]) {
      const all = await request(jobpost.app).get('/api/v1/jobs').set(as(user)).expect(200)
      expect(all.body.data.map((job: { jobId: string }) => job.jobId).sort()).toEqual([aliceId, bobId].sort())
    }
  })

  it('WebSocket: a subscriber receives updates and deletions of its own jobs only; editors and admins receive all', async () => {
    const aliceWs = await connectWs(jobpost, { token: alice.token })
    const editorWs = await connectWs(jobpost, { token: editor.token })
    const ticket = (await request(jobpost.app).post('/api/v1/auth/ws-ticket').set(as(bob)).expect(201)).body.data.ticket
    const bobWs = await connectWs(jobpost, { ticket })
    try {
      const hooks = jobpost.pluginHooks('visibility')
      const bobJob = await hooks.createJob({ name: 'Bob secret', type: 'ws-b', createdBy: bob.id })
      await bobJob.start()
      await bobJob.updateProgress(50, { secret: 'bob-only' })
      await bobJob.complete({ secret: 'bob-only' })
      await jobpost.jobs.deleteJob(bobJob.jobId)
      const aliceJob = await hooks.createJob({ name: 'Alice own', type: 'ws-a', createdBy: alice.id })
      const systemJob = await hooks.createJob({ name: 'System', type: 'ws-system' })
      await aliceJob.start()
      await aliceJob.complete()

      // Events go out in order: once Alice sees her completion, Bob's earlier events would have arrived.
      await aliceWs.next((m) => m.type === 'job_update' && m.job.jobId === aliceJob.jobId && m.job.status === 'completed')
      await bobWs.next((m) => m.type === 'job_deleted' && m.jobId === bobJob.jobId)
      await editorWs.next((m) => m.type === 'job_update' && m.job.jobId === aliceJob.jobId && m.job.status === 'completed')
      const aliceSaw = new Set(aliceWs.messages.flatMap((m) => (m.type === 'job_update' ? [m.job.jobId] : m.type === 'job_deleted' ? [m.jobId] : [])))
      expect([...aliceSaw]).toEqual([aliceJob.jobId])
      expect(JSON.stringify(aliceWs.messages)).not.toContain('bob-only')
      const bobSaw = new Set(bobWs.messages.flatMap((m) => (m.type === 'job_update' ? [m.job.jobId] : m.type === 'job_deleted' ? [m.jobId] : [])))
      expect([...bobSaw]).toEqual([bobJob.jobId])
      const editorSaw = new Set(editorWs.messages.flatMap((m) => (m.type === 'job_update' ? [m.job.jobId] : [])))
      expect([...editorSaw].sort()).toEqual([bobJob.jobId, aliceJob.jobId, systemJob.jobId].sort())
    } finally {
      await Promise.all([aliceWs.close(), editorWs.close(), bobWs.close()])
    }
  })
})

describe('WebSocket upgrade: credentials and CSWSH', () => {
  let jobpost: Started
  let user: TestUser
  let wsUrl: string

  beforeAll(async () => {
    jobpost = await startJobpost({ corsOrigins: ['https://admin.example'] })
    user = await userWithRole(jobpost, 'administrator')
    wsUrl = `${jobpost.url.replace('http', 'ws')}/ws`
  })
  afterAll(() => jobpost.close())

  const bearer = () => ({ authorization: `Bearer ${user.token}` })

  it('refuses a foreign Origin with 403 and no 101, even with a valid token or ticket', async () => {
    const own = new URL(jobpost.url)
    for (const origin of [
      'https://evil.example',
      'null',
      `http://${own.host}.evil.example`,
      `http://evil.example/${own.host}`,
      `http://${own.hostname}:1`,
      'https://admin.example.evil.example',
      'HTTPS://ADMIN.EXAMPLE.evil',
      '',
    ]) {
      expect(await upgradeStatus(wsUrl, { ...bearer(), origin }), origin).toBe(403)
    }
    const { ticket } = (await request(jobpost.app).post('/api/v1/auth/ws-ticket').set(bearer()).expect(201)).body.data
    expect(await upgradeStatus(`${wsUrl}?ticket=${ticket}`, { origin: 'https://evil.example' })).toBe(403)
    // The refused attempt did not burn the ticket: the real client can still use it, once.
    expect(await upgradeStatus(`${wsUrl}?ticket=${ticket}`, { origin: jobpost.url })).toBe(101)
    expect(await upgradeStatus(`${wsUrl}?ticket=${ticket}`, { origin: jobpost.url })).toBe(401)
  })

  it('accepts the server’s own origin, an allowlisted one, and non-browser clients without Origin', async () => {
    expect(await upgradeStatus(wsUrl, { ...bearer(), origin: jobpost.url })).toBe(101)
    expect(await upgradeStatus(wsUrl, { ...bearer(), origin: 'https://admin.example' })).toBe(101)
    expect(await upgradeStatus(wsUrl, bearer())).toBe(101)
  })

  it('refuses missing, bad, revoked and replayed credentials with 401 (no 101)', async () => {
    expect(await upgradeStatus(wsUrl)).toBe(401)
    expect(await upgradeStatus(wsUrl, { authorization: 'Bearer nope' })).toBe(401)
    expect(await upgradeStatus(`${wsUrl}?ticket=nope`)).toBe(401)
    expect(await upgradeStatus(`${wsUrl}?ticket=a&ticket=b`)).toBe(401)
    expect(await upgradeStatus(`${wsUrl}?ticket=${'x'.repeat(5000)}`)).toBe(401)
    expect(await upgradeStatus(`${wsUrl}?token=${user.token}`)).toBe(401)
    // A bearer token is not a ticket.
    expect(await upgradeStatus(`${wsUrl}?ticket=${user.token}`)).toBe(401)
    const other = await userWithRole(jobpost, 'editor')
    await request(jobpost.app).post('/api/v1/auth/logout').set('authorization', `Bearer ${other.token}`).expect(200)
    expect(await upgradeStatus(wsUrl, { authorization: `Bearer ${other.token}` })).toBe(401)
    expect(await upgradeStatus(`${jobpost.url.replace('http', 'ws')}/elsewhere`, bearer())).toBe(404)
  })
})

describe('login rate limiting', () => {
  let jobpost: Started

  beforeAll(async () => {
    jobpost = await startJobpost({ loginRateLimit: 5, loginAddressRateLimit: 5, loginRateWindowMs: DAY_MS })
  })
  afterAll(() => jobpost.close())

  it('a spoofed X-Forwarded-For (trust proxy off) does not reset the per-address limit', async () => {
    const victim = await jobpost.auth.createUser({ email: 'victim@example.com', password: PASSWORD, roles: ['subscriber'] })
    const statuses: number[] = []
    for (let i = 0; i < 8; i++) {
      const res = await request(jobpost.url)
        .post('/api/v1/auth/login')
        .set('x-forwarded-for', `203.0.113.${i}, 198.51.100.${i}`)
        .set('x-real-ip', `203.0.113.${i}`)
        .set('forwarded', `for=203.0.113.${i}`)
        .send({ email: `nobody-${i}@example.com`, password: 'wrong password' })
      statuses.push(res.status)
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429])
    // Even the right password, from a "new" address, waits out the window.
    const blocked = await request(jobpost.url)
      .post('/api/v1/auth/login')
      .set('x-forwarded-for', '192.0.2.77')
      .send({ email: victim.email, password: PASSWORD })
    expect(blocked.status).toBe(429)
    expect(blocked.body.error.code).toBe('RATE_LIMITED')
  })

  it('one account is limited per address: a stranger locks it out from their own address only', async () => {
    const other = await startJobpost({ loginRateLimit: 3, loginRateWindowMs: DAY_MS, trustProxy: 'loopback' })
    try {
      await other.auth.createUser({ email: 'target@example.com', password: PASSWORD, roles: ['subscriber'] })
      // trust proxy on: each request really comes from the address it names.
      const login = (address: string, password: string) =>
        request(other.url).post('/api/v1/auth/login').set('x-forwarded-for', address).send({ email: 'target@example.com', password })
      const statuses: number[] = []
      for (let i = 0; i < 5; i++) statuses.push((await login('203.0.113.9', `guess ${i}`)).status)
      expect(statuses).toEqual([401, 401, 401, 429, 429])
      // The owner, from their own address, still gets in; the stranger's address stays blocked.
      expect((await login('198.51.100.20', PASSWORD)).status).toBe(200)
      expect((await login('203.0.113.9', PASSWORD)).status).toBe(429)
      // Another address gets its own attempts.
      expect((await login('203.0.113.10', 'guess again')).status).toBe(401)
    } finally {
      await other.close()
    }
  })
})
