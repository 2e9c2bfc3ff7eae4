import type { AddressInfo } from 'node:net'
import pg from 'pg'
import request from 'supertest'
import WebSocket from 'ws'
import { testConfig, type JobpostConfig } from '../../core/config.js'
import { createJobpost, type CreateJobpostOptions, type Jobpost } from '../../core/createJobpost.js'
import type { Role, ServerMessage } from '../../core/contract.js'

export const PASSWORD = 'correct horse battery'
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A Jobpost on a fresh in-memory SQLite database (or the given config), not yet listening. */
export async function startJobpost(
  overrides: Partial<JobpostConfig> = {},
  options: CreateJobpostOptions & { listen?: boolean } = {},
): Promise<Jobpost & { url: string }> {
  const jobpost = await createJobpost(testConfig({ runWorker: false, ...overrides }), options)
  const url = options.listen === false ? '' : await jobpost.listen()
  return Object.assign(jobpost, { url })
}

export interface TestUser {
  id: number
  token: string
  email: string
}

let userCounter = 0
/** Creates a user with a role and logs them in over HTTP. */
export async function userWithRole(jobpost: Jobpost, role: Role): Promise<TestUser> {
  const email = `${role}-${++userCounter}-${Date.now()}@example.com`
  const user = await jobpost.auth.createUser({ email, password: PASSWORD, roles: [role] })
  const res = await request(jobpost.app).post('/api/v1/auth/login').send({ email, password: PASSWORD }).expect(200)
  return { id: user.id, token: res.body.data.token, email }
}

/** A real WebSocket client that collects every message. */
export async function connectWs(
  jobpost: Jobpost,
  options: { token?: string; ticket?: string; origin?: string } = {},
): Promise<{ ws: WebSocket; messages: ServerMessage[]; next(predicate: (m: ServerMessage) => boolean, timeoutMs?: number): Promise<ServerMessage>; close(): Promise<void> }> {
  const port = (jobpost.server.address() as AddressInfo).port
  const query = options.ticket ? `?ticket=${encodeURIComponent(options.ticket)}` : ''
  const headers: Record<string, string> = {}
  if (options.token) headers.authorization = `Bearer ${options.token}`
  if (options.origin) headers.origin = options.origin
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${query}`, { headers })
  const messages: ServerMessage[] = []
  const waiters: { predicate: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = []
  ws.on('message', (raw) => {
    const message = JSON.parse(raw.toString()) as ServerMessage
    messages.push(message)
    for (const waiter of [...waiters]) {
      if (waiter.predicate(message)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(message)
      }
    }
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
  })
  return {
    ws,
    messages,
    next(predicate, timeoutMs = 5000) {
      const seen = messages.find(predicate)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('Timed out waiting for a WebSocket message')), timeoutMs)
        waiters.push({ predicate, resolve: (m) => (clearTimeout(timer), resolve(m)) })
      })
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve()
        ws.once('close', () => resolve())
        ws.close()
      }),
  }
}

/** Tries an upgrade and returns the HTTP status it was refused with (or 101). */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once('open', () => {
      ws.close()
      resolve(101)
    })
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.once('error', reject)
  })
}

/** A fresh PostgreSQL database for one test file, or null (with a visible message) when none answers. */
export async function freshPostgresDatabase(label: string): Promise<{ url: string; drop(): Promise<void> } | null> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 })
  try {
    await admin.connect()
  } catch (error) {
    console.warn(`\n  ⚠ SKIPPED (${label}): no PostgreSQL answers at ${POSTGRES_URL}: ${(error as Error).message}\n`)
    return null
  }
  const name = `jobpost_test_${label.replace(/\W/g, '_').toLowerCase()}_${process.pid}_${Date.now()}`
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = POSTGRES_URL.replace(/\/[^/]*$/, `/${name}`)
  return {
    url,
    async drop() {
      const client = new pg.Client({ connectionString: POSTGRES_URL })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

/** Resolves when `predicate` holds, checking every few ms (for state reached through events). */
export async function eventually<T>(check: () => T | Promise<T>, { timeoutMs = 5000, intervalMs = 10 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value) return value
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) throw lastError ?? new Error('Condition not reached in time')
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
