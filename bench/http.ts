/** A Jobpost serving HTTP in this process, and sessions for the bench's HTTP clients. */
import { testConfig, type DatabaseTarget } from '../core/config.js'
import { createJobpost, type Jobpost } from '../core/createJobpost.js'
import type { Role } from '../core/contract.js'

export const PASSWORD = 'bench password 123'

export type Served = Jobpost & { url: string }

export async function openServer(target: DatabaseTarget, options: { concurrency?: number; clock?: { now(): number } } = {}): Promise<Served> {
  const jobpost = await createJobpost(
    testConfig({ database: target, workerConcurrency: options.concurrency ?? 10, logLevel: 'silent', jobRetentionDays: 0 }),
    { runWorker: false, clock: options.clock },
  )
  const url = await jobpost.listen()
  return Object.assign(jobpost, { url })
}

/** A user with `roles`, logged in over HTTP. */
export async function userSession(jobpost: Served, roles: Role[], label: string = roles[0]!): Promise<{ token: string; userId: number }> {
  const email = `bench-${label}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`
  await jobpost.auth.createUser({ email, password: PASSWORD, roles })
  const res = await fetch(`${jobpost.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  })
  if (!res.ok) throw new Error(`login failed: ${res.status} ${await res.text()}`)
  const body = (await res.json()) as { data: { token: string; user: { id: number } } }
  return { token: body.data.token, userId: body.data.user.id }
}

export const adminSession = (jobpost: Served) => userSession(jobpost, ['administrator'])
