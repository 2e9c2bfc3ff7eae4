/** A Jobpost serving HTTP in this process, and sessions for the bench's HTTP clients. */
import { loadConfig, type DatabaseTarget, type JobpostConfig } from '../core/config.js'
import { createJobpost, type Jobpost } from '../core/createJobpost.js'
import type { Role } from '../core/contract.js'

export const PASSWORD = 'bench password 123'

export type Served = Jobpost & { url: string }

/**
 * Jobpost's config for the bench: defaults, quiet logs, no plugins, no retention sweep. With
 * `unlimited`, the per-owner creation limits are off (JOB_CREATE_RATE_PER_MINUTE=0,
 * MAX_PENDING_PER_OWNER=0), as an operator loading a million jobs in minutes would set them.
 */
export function benchConfig(database: DatabaseTarget, options: { concurrency?: number; unlimited?: boolean } = {}): JobpostConfig {
  const env: Record<string, string> = { LOG_LEVEL: 'silent', JOB_RETENTION_DAYS: '0', ACTIVE_PLUGINS: '', PORT: '0' }
  if (options.unlimited) Object.assign(env, { JOB_CREATE_RATE_PER_MINUTE: '0', MAX_PENDING_PER_OWNER: '0' })
  return { ...loadConfig(env), database, activePlugins: [], workerConcurrency: options.concurrency ?? 10 }
}

export async function openServer(
  target: DatabaseTarget,
  options: { concurrency?: number; unlimited?: boolean; clock?: { now(): number } } = {},
): Promise<Served> {
  const jobpost = await createJobpost(benchConfig(target, options), { runWorker: false, clock: options.clock })
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
