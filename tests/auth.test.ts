import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../core/createJobpost.js'
import { PASSWORD, startJobpost, userWithRole, type TestUser } from './support/harness.js'

/** Rate windows are aligned to multiples of their length: a day-long one is not crossed mid-test. */
const DAY_MS = 24 * 3600 * 1000

describe('auth', () => {
  let jobpost: Jobpost
  let admin: TestUser
  let editor: TestUser
  let subscriber: TestUser

  beforeAll(async () => {
    jobpost = await startJobpost({ adminEmail: 'root@example.com', adminPassword: 'a long admin password', loginRateLimit: 5, loginAddressRateLimit: 5, loginRateWindowMs: DAY_MS })
    admin = await userWithRole(jobpost, 'administrator')
    editor = await userWithRole(jobpost, 'editor')
    subscriber = await userWithRole(jobpost, 'subscriber')
  })
  afterAll(() => jobpost.close())

  const get = (token?: string) => {
    const req = request(jobpost.app).get('/api/v1/auth/me')
    return token ? req.set('authorization', `Bearer ${token}`) : req
  }

  it('seeds the first administrator from ADMIN_EMAIL / ADMIN_PASSWORD', async () => {
    const res = await request(jobpost.app).post('/api/v1/auth/login').send({ email: 'ROOT@example.com ', password: 'a long admin password' }).expect(200)
    expect(res.body.data.user).toMatchObject({ email: 'root@example.com', roles: ['administrator'] })
    expect(res.body.data.user.capabilities).toEqual(['create_jobs', 'delete_jobs', 'manage_jobs', 'read_jobs'])
  })

  it('gives roles the capabilities of the contract', async () => {
    expect((await get(editor.token).expect(200)).body.data.user.capabilities).toEqual(['create_jobs', 'read_jobs'])
    expect((await get(subscriber.token).expect(200)).body.data.user.capabilities).toEqual(['create_jobs'])
  })

  it('stores passwords as scrypt hashes and tokens only as hashes', async () => {
    const user = await jobpost.db.knex('users').where('id', admin.id).first()
    expect(user.password_hash).toMatch(/^scrypt\$32768\$8\$3\$/)
    expect(user.password_hash).not.toContain(PASSWORD)
    const tokens = await jobpost.db.knex('auth_tokens').select('token_hash')
    expect(tokens.every((t: { token_hash: string }) => /^[0-9a-f]{64}$/.test(t.token_hash))).toBe(true)
    expect(tokens.some((t: { token_hash: string }) => t.token_hash === admin.token)).toBe(false)
  })

  it('answers a wrong password and an unknown email alike with 401', async () => {
    const wrong = await request(jobpost.app).post('/api/v1/auth/login').send({ email: editor.email, password: 'nope nope nope' }).expect(401)
    const unknown = await request(jobpost.app).post('/api/v1/auth/login').send({ email: 'ghost@example.com', password: 'nope nope nope' }).expect(401)
    expect(wrong.body).toEqual({ success: false, error: { code: 'UNAUTHENTICATED', message: 'The email or password is wrong.' } })
    expect(unknown.body).toEqual(wrong.body)
  })

  it('401 without a token, with a malformed or unknown one; 403 with a token lacking the capability', async () => {
    await get().expect(401)
    await get('not a token!').expect(401)
    await request(jobpost.app).get('/api/v1/auth/me').set('authorization', 'Basic abc').expect(401)
    await get('A'.repeat(43)).expect(401)
    const forbidden = await request(jobpost.app)
      .delete('/api/v1/jobs/cleanup?daysOld=30')
      .set('authorization', `Bearer ${editor.token}`)
      .expect(403)
    expect(forbidden.body.error.code).toBe('FORBIDDEN')
    const created = await request(jobpost.app)
      .post('/api/v1/jobs')
      .set('authorization', `Bearer ${subscriber.token}`)
      .send({ name: 'mine', type: 'report' })
      .expect(201)
    expect(created.body.data.createdBy).toBe(subscriber.id)
  })

  it('logout revokes the token: it then gets 401, and other tokens keep working', async () => {
    const fresh = await userWithRole(jobpost, 'editor')
    await get(fresh.token).expect(200)
    await request(jobpost.app).post('/api/v1/auth/logout').set('authorization', `Bearer ${fresh.token}`).expect(200)
    const after = await get(fresh.token).expect(401)
    expect(after.body.error.code).toBe('UNAUTHENTICATED')
    await get(editor.token).expect(200)
  })

  it('issues single-use WebSocket tickets', async () => {
    const res = await request(jobpost.app).post('/api/v1/auth/ws-ticket').set('authorization', `Bearer ${editor.token}`).expect(201)
    const ticket = res.body.data.ticket as string
    expect(await jobpost.auth.redeemWsTicket(ticket)).toMatchObject({ user: { id: editor.id } })
    expect(await jobpost.auth.redeemWsTicket(ticket)).toBeNull()
    // a ticket is not a bearer token
    const other = await request(jobpost.app).post('/api/v1/auth/ws-ticket').set('authorization', `Bearer ${editor.token}`).expect(201)
    await get(other.body.data.ticket).expect(401)
  })

  it('rate-limits login per address, and a spoofed X-Forwarded-For does not get around it', async () => {
    const victim = 'victim@example.com'
    let last = 0
    for (let i = 0; i < 8; i++) {
      const res = await request(jobpost.app)
        .post('/api/v1/auth/login')
        .set('x-forwarded-for', `10.0.0.${i}`)
        .send({ email: `${victim}${i}`, password: 'guess guess' })
      last = res.status
    }
    expect(last).toBe(429)
    const res = await request(jobpost.app).post('/api/v1/auth/login').set('x-forwarded-for', '1.2.3.4').send({ email: admin.email, password: PASSWORD })
    expect(res.status).toBe(429)
    expect(res.body.error.code).toBe('RATE_LIMITED')
  })

  it('hashes one password at a time; logins beyond the waiting room get 429 and are not counted as attempts', async () => {
    const busy = await startJobpost({ passwordHashConcurrency: 1, passwordHashQueueMax: 1, requestConcurrencyPerClient: 10, loginRateLimit: 3, loginRateWindowMs: DAY_MS })
    try {
      const emails = ['a', 'b', 'c', 'd', 'e'].map((name) => `${name}-busy@example.com`)
      for (const email of emails) await busy.auth.createUser({ email, password: PASSWORD, roles: ['subscriber'] })
      const statuses = await Promise.all(
        emails.map((email) => request(busy.app).post('/api/v1/auth/login').send({ email, password: PASSWORD }).then((res) => [res.status, res.body.error?.code])),
      )
      // One hashing, one waiting; the other three are told to come back (nothing was checked).
      expect(statuses.filter(([status]) => status === 200)).toHaveLength(2)
      expect(statuses.filter(([status, code]) => status === 429 && code === 'RATE_LIMITED')).toHaveLength(3)
      expect(busy.auth.hashQueue).toEqual({ running: 0, queued: 0 })
      // Refused while busy does not count: each of them can still fail 3 times before a lockout.
      for (const email of emails) {
        for (let i = 0; i < 3; i++) await request(busy.app).post('/api/v1/auth/login').send({ email, password: 'wrong password' }).expect(401)
        await request(busy.app).post('/api/v1/auth/login').send({ email, password: 'wrong password' }).expect(429)
      }
    } finally {
      await busy.close()
    }
  }, 60_000)

  it('creates users from the CLI service with validation', async () => {
    await expect(jobpost.auth.createUser({ email: 'x@example.com', password: 'short', roles: ['editor'] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
    await expect(jobpost.auth.createUser({ email: admin.email, password: 'long enough pw', roles: ['editor'] })).rejects.toMatchObject({ code: 'CONFLICT' })
    await expect(jobpost.auth.createUser({ email: 'y@example.com', password: 'long enough pw', roles: ['root' as any] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' })
  })
})
