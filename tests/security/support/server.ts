import { fork } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT_DIR } from '../../../core/config.js'
import type { Role } from '../../../core/contract.js'
import { createDatabase } from '../../../core/db/createDatabase.js'
import { hashPassword } from '../../../core/auth/passwords.js'
import { UserStore } from '../../../core/store/UserStore.js'
import { migrateLatest } from '../../../migrations/index.js'
import { PASSWORD } from '../../support/harness.js'
import { spawnTs, tempDir, type Child } from '../../reliability/support/processes.js'

export { PASSWORD }

/** A free TCP port on 127.0.0.1 (released just before the server takes it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

let passwordHash: Promise<string> | undefined

/**
 * Creates users straight in the database (one scrypt hash shared by all, so 100 users cost one
 * hash, not 100) and returns their ids by email.
 */
export async function seedUsers(databaseUrl: string, users: { email: string; role: Role }[]): Promise<Map<string, number>> {
  passwordHash ??= hashPassword(PASSWORD)
  const hash = await passwordHash
  const target = databaseUrl.startsWith('sqlite:')
    ? { dialect: 'sqlite' as const, filename: databaseUrl.slice('sqlite:'.length) }
    : { dialect: 'postgres' as const, connectionString: databaseUrl }
  const db = createDatabase(target)
  try {
    await migrateLatest(db.knex)
    const store = new UserStore(db)
    const ids = new Map<string, number>()
    for (const user of users) {
      ids.set(user.email, await store.createUser({ email: user.email, displayName: '', passwordHash: hash, createdAt: new Date().toISOString() }, [user.role]))
    }
    return ids
  } finally {
    await db.close()
  }
}

export interface RealServer {
  url: string
  child: Child
  /** The server's resident set size now (Linux /proc), in MB. */
  rssMb(): number
  stop(): Promise<void>
}

/**
 * `core/server.ts` (what `npm start` runs) in its own process, so the load a test sends and the
 * probe's timing do not share an event loop with the server. Resolves once it answers HTTP.
 */
export async function startRealServer(env: Record<string, string>): Promise<RealServer> {
  const port = await freePort()
  const child = spawnTs(path.join(ROOT_DIR, 'core', 'server.ts'), {
    PORT: String(port),
    HOST: '127.0.0.1',
    ACTIVE_PLUGINS: '',
    LOG_LEVEL: 'warn',
    RUN_WORKER: 'false',
    ...env,
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.child.exitCode !== null) throw new Error(`The server exited:\n${child.output()}`)
    try {
      const res = await fetch(`${url}/api/v1/openapi.json`)
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`The server did not answer in 30 s:\n${child.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url,
    child,
    rssMb() {
      const status = fs.readFileSync(`/proc/${child.child.pid}/status`, 'utf8')
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024
    },
    async stop() {
      if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGTERM')
      const exited = await Promise.race([child.exited, new Promise((resolve) => setTimeout(resolve, 10_000, null))])
      if (!exited) {
        child.child.kill('SIGKILL')
        await child.exited
      }
    },
  }
}

/** A SQLite file in a fresh temporary folder. */
export function sqliteFile(label: string): { url: string; remove(): void } {
  const dir = tempDir(label)
  return { url: `sqlite:${path.join(dir.dir, 'jobpost.sqlite')}`, remove: () => dir.remove() }
}

export async function login(url: string, email: string, password = PASSWORD): Promise<string> {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  })
  if (res.status !== 200) throw new Error(`login of ${email}: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { data: { token: string } }).data.token
}

export interface Answer {
  status: number
  body: any
  headers: Headers
  ms: number
}

/** One real HTTP request (fetch: its own connections, so requests run concurrently). */
export async function call(
  url: string,
  options: { method?: string; path: string; token?: string; body?: unknown; headers?: Record<string, string> },
): Promise<Answer> {
  const started = performance.now()
  const res = await fetch(`${url}${options.path}`, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: kept as text, and the test says so
  }
  return { status: res.status, body, headers: res.headers, ms: performance.now() - started }
}

/**
 * Another user's request (GET /api/v1/auth/me: three database reads), sent every `everyMs` from
 * ANOTHER process while a test runs its load, one at a time (a slow answer is measured, not
 * hidden behind a queue of probes): how long the server made everyone else wait.
 */
export async function startProbe(url: string, token: string, everyMs = 25) {
  const child = fork(path.join(path.dirname(fileURLToPath(import.meta.url)), 'probe.mjs'), [url, token, String(everyMs)], { stdio: 'ignore' })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`probe exited (${code})`)))
  })
  return {
    async stop() {
      const result = new Promise<{ latencies: number[]; failures: string[] }>((resolve, reject) => {
        child.once('message', (message) => resolve(message as { latencies: number[]; failures: string[] }))
        child.once('exit', (code) => reject(new Error(`probe exited (${code}) without a report`)))
      })
      child.send('stop')
      const { latencies, failures } = await result
      const sorted = [...latencies].sort((a, b) => a - b)
      return {
        latencies: latencies.map((ms) => Math.round(ms)),
        count: latencies.length,
        failures,
        maxMs: sorted.at(-1) ?? 0,
        p50Ms: sorted[Math.floor(sorted.length / 2)] ?? 0,
      }
    },
  }
}

/** Runs `count` tasks with at most `concurrency` in flight. */
export async function inParallel<T>(count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const index = next++
        results[index] = await task(index)
      }
    }),
  )
  return results
}

export function tally(statuses: number[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}
