import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../core/createJobpost.js'
import { startJobpost, userWithRole, type TestUser } from './support/harness.js'

describe('HTTP errors use the contract envelope', () => {
  let jobpost: Jobpost
  let admin: TestUser

  beforeAll(async () => {
    jobpost = await startJobpost({ bodyLimitBytes: 4096 })
    admin = await userWithRole(jobpost, 'administrator')
  })
  afterAll(() => jobpost.close())

  const post = (path: string) => request(jobpost.app).post(path).set('authorization', `Bearer ${admin.token}`)

  it('400 INVALID_JSON for a body that is not JSON', async () => {
    const res = await post('/api/v1/jobs').set('content-type', 'application/json').send('{"name": "x",').expect(400)
    expect(res.body).toEqual({ success: false, error: { code: 'INVALID_JSON', message: 'The request body is not valid JSON.' } })
  })

  it('413 PAYLOAD_TOO_LARGE above the body limit', async () => {
    const res = await post('/api/v1/jobs').send({ name: 'x', type: 't', description: 'x'.repeat(8000) }).expect(413)
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE')
  })

  it('415 UNSUPPORTED_MEDIA_TYPE for a form or text body', async () => {
    const res = await post('/api/v1/jobs').set('content-type', 'text/plain').send('name=x').expect(415)
    expect(res.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE')
    await post('/api/v1/auth/login').type('form').send({ email: 'a', password: 'b' }).expect(415)
  })

  it('400 VALIDATION_FAILED for unknown fields and wrong types, naming them', async () => {
    const unknown = await post('/api/v1/jobs').send({ name: 'x', type: 't', evil: true }).expect(400)
    expect(unknown.body.error).toEqual({ code: 'VALIDATION_FAILED', message: 'unknown field(s): evil' })
    const wrongType = await post('/api/v1/jobs').send({ name: 42, type: 't' }).expect(400)
    expect(wrongType.body.error.message).toMatch(/^name:/)
    const arrayBody = await post('/api/v1/jobs').send([1, 2]).expect(400)
    expect(arrayBody.body.success).toBe(false)
  })

  it('404 NOT_FOUND in the envelope for an unknown API route (401 first when anonymous)', async () => {
    await request(jobpost.app).get('/api/v1/nope').expect(401)
    const res = await request(jobpost.app).get('/api/v1/nope').set('authorization', `Bearer ${admin.token}`).expect(404)
    expect(res.body).toEqual({ success: false, error: { code: 'NOT_FOUND', message: 'No such API route.' } })
  })

  it('never leaks a stack trace', async () => {
    const res = await post('/api/v1/jobs').set('content-type', 'application/json').send('{"__proto__": {"x": 1}, "name": "a", "type": "t"}')
    expect(res.status).toBe(400)
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+/)
  })
})
