import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { PASSWORD, startJobpost, userWithRole, type TestUser } from '../support/harness.js'
import { listRoutes, type RouteInfo } from './support/routes.js'

/** Bodies no route should answer with a 500 (raw strings, sent with the given content type). */
const BODIES: { label: string; type: string; body: string }[] = [
  { label: '__proto__', type: 'application/json', body: '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}}' },
  { label: 'deeply nested', type: 'application/json', body: '{"a":'.repeat(5000) + '1' + '}'.repeat(5000) },
  { label: 'deep array', type: 'application/json', body: '['.repeat(20_000) + ']'.repeat(20_000) },
  { label: 'array', type: 'application/json', body: '[1,2,3]' },
  { label: 'null', type: 'application/json', body: 'null' },
  { label: 'junk', type: 'application/json', body: '{"name": tru' },
  { label: 'too large', type: 'application/json', body: JSON.stringify({ x: 'x'.repeat(300 * 1024) }) },
  { label: 'wrong types', type: 'application/json', body: '{"name":{"$gt":""},"type":["a"],"priority":"1 OR 1=1","limit":1e309,"steps":"x","items":{"length":1e9}}' },
  { label: 'text/plain', type: 'text/plain', body: 'hello' },
  { label: 'form', type: 'application/x-www-form-urlencoded', body: 'name=x&type=y' },
]

const QUERIES = ['limit=1e9&offset=-1', '__proto__[polluted]=yes', 'format=<script>', 'daysOld=Infinity', 'status=1%20OR%201=1', 'a=1&a=2&a=3']
const PARAM_VALUES = ['1 OR 1=1', "' OR '1'='1", '..%2F..%2Fetc%2Fpasswd', 'x'.repeat(3000), '%00', '__proto__']

/**
 * Every route found on the running app (those of other engineers included), called by an
 * administrator with hostile bodies, query strings and path parameters: a 4xx envelope or a
 * success, never a 500, and no prototype pollution.
 */
describe('every route × hostile input (as an administrator)', () => {
  let jobpost: Jobpost
  let admin: TestUser
  let routes: RouteInfo[]

  beforeAll(async () => {
    jobpost = await startJobpost({ activePlugins: ['example-job-plugin'] })
    admin = await userWithRole(jobpost, 'administrator')
    routes = listRoutes(jobpost.app).filter((route) => route.path.startsWith('/api/'))
  })
  afterAll(() => jobpost.close())

  /** Logout would revoke the shared token: it gets a fresh one each time. */
  async function tokenFor(route: RouteInfo): Promise<string> {
    if (route.path !== '/api/v1/auth/logout') return admin.token
    const res = await request(jobpost.app).post('/api/v1/auth/login').send({ email: admin.email, password: PASSWORD }).expect(200)
    return res.body.data.token
  }

  function send(route: RouteInfo, path: string, token: string) {
    return (request(jobpost.app) as any)[route.method.toLowerCase()](path).set('authorization', `Bearer ${token}`) as request.Test
  }

  const failures: string[] = []
  const check = (label: string, res: request.Response) => {
    if (res.status >= 500) failures.push(`${label} → ${res.status} ${JSON.stringify(res.body).slice(0, 120)}`)
    else if (res.status >= 400 && res.body?.success !== false) failures.push(`${label} → ${res.status} without the error envelope`)
  }

  it('hostile bodies never get a 500', async () => {
    const withBody = routes.filter((route) => route.method !== 'GET')
    for (const route of withBody) {
      for (const { label, type, body } of BODIES) {
        const path = route.path.replace(/:(\w+)/g, '00000000-0000-4000-8000-000000000000')
        const res = await send(route, path, await tokenFor(route)).set('content-type', type).send(body)
        check(`${route.method} ${route.path} with ${label} body`, res)
      }
    }
    expect(failures).toEqual([])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('hostile query strings and path parameters never get a 500', async () => {
    for (const route of routes) {
      const base = route.path.replace(/:(\w+)/g, '00000000-0000-4000-8000-000000000000')
      for (const query of QUERIES) {
        const res = await send(route, `${base}?${query}`, await tokenFor(route))
        check(`${route.method} ${route.path}?${query}`, res)
      }
      if (!route.path.includes(':')) continue
      for (const value of PARAM_VALUES) {
        const res = await send(route, route.path.replace(/:(\w+)/g, value), await tokenFor(route))
        check(`${route.method} ${route.path} with :param = ${value.slice(0, 30)}`, res)
      }
    }
    expect(failures).toEqual([])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
