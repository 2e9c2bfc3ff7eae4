import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'

/** The project root (where package.json lives). */
export const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const csv = z
  .string()
  .transform((value) => value.split(',').map((part) => part.trim()).filter(Boolean))

const intFromEnv = (defaultValue: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(defaultValue)

/**
 * Every option Jobpost reads from the environment, with its default. Read once, here.
 * Unknown `DATABASE_URL` schemes are rejected at start rather than guessed.
 */
const envSchema = z.object({
  PORT: intFromEnv(3001, 0, 65535),
  HOST: z.string().default('127.0.0.1'),
  /** unset: `data/jobpost.sqlite`; `sqlite:PATH` (or `sqlite::memory:`); `postgres://...` */
  DATABASE_URL: z.string().optional(),
  /** PostgreSQL connections per process (default: the worker's concurrency + 10, at least 20). */
  DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(500).optional(),
  ADMIN_EMAIL: z.string().optional(),
  ADMIN_PASSWORD: z.string().optional(),
  /** Allowed browser origins for CORS and the WebSocket upgrade; default: the server's own origin. */
  CORS_ORIGINS: csv.optional(),
  /** Open WebSockets allowed per client address (raise it behind a reverse proxy). */
  WS_MAX_CONNECTIONS_PER_ADDRESS: intFromEnv(50, 1, 100_000),
  /** Plugins to load from content/plugins (comma-separated slugs). */
  ACTIVE_PLUGINS: csv.default(['example-job-plugin']),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Bearer token lifetime. */
  TOKEN_TTL_HOURS: intFromEnv(24 * 7, 1, 24 * 365),
  /** Largest JSON body accepted, in bytes. */
  BODY_LIMIT_BYTES: intFromEnv(256 * 1024, 1024, 50 * 1024 * 1024),
  /** Run the job runtime inside the HTTP server process. */
  RUN_WORKER: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  WORKER_CONCURRENCY: intFromEnv(10, 1, 1000),
  /** Lease of one attempt; a worker that stops renewing it for this long loses the job. */
  WORKER_LEASE_MS: intFromEnv(30_000, 200, 3600_000),
  /** How often a worker looks for due jobs it was not woken for (other processes, delays). */
  WORKER_POLL_MS: intFromEnv(1000, 10, 60_000),
  /** On SIGTERM/SIGINT, how long running attempts may finish before they are given back to the queue. */
  SHUTDOWN_GRACE_MS: intFromEnv(10_000, 0, 3600_000),
  /** Finished jobs older than this many days are removed automatically (0 turns it off). */
  JOB_RETENTION_DAYS: intFromEnv(30, 0, 3650),
  /** Login attempts allowed per address and per account in the window below. */
  LOGIN_RATE_LIMIT: intFromEnv(10, 1, 10000),
  LOGIN_RATE_WINDOW_MS: intFromEnv(15 * 60 * 1000, 1000, 24 * 3600 * 1000),
  /** Login attempts allowed per address over all accounts in that window. */
  LOGIN_ADDRESS_RATE_LIMIT: intFromEnv(100, 1, 1_000_000),
  /** Password hashes computed at once (scrypt); the rest wait, so logins cannot starve the server. */
  PASSWORD_HASH_CONCURRENCY: z.coerce.number().int().min(1).max(64).optional(),
  /** Logins waiting for a hash slot beyond this many get 429 at once. */
  PASSWORD_HASH_QUEUE_MAX: intFromEnv(1000, 0, 1_000_000),
  /** Requests of one client (bearer token, else address) in progress at once under /api; the rest wait. */
  REQUEST_CONCURRENCY_PER_CLIENT: intFromEnv(2, 1, 10_000),
  /** Jobs one owner may create per minute (unset: 600 per user over REST, 100,000 per plugin; 0 = no limit). */
  JOB_CREATE_RATE_PER_MINUTE: z.coerce.number().int().min(0).max(100_000_000).optional(),
  /** Pending jobs one owner may have (unset: 10,000 per user, 100,000 per plugin; 0 = no limit). */
  MAX_PENDING_PER_OWNER: z.coerce.number().int().min(0).max(100_000_000).optional(),
  /** Express `trust proxy` setting; off by default so X-Forwarded-For cannot be spoofed. */
  TRUST_PROXY: z.string().optional(),
})

export type DatabaseTarget =
  | { dialect: 'sqlite'; filename: string }
  | { dialect: 'postgres'; connectionString: string; poolMax?: number }

export interface JobpostConfig {
  port: number
  host: string
  database: DatabaseTarget
  adminEmail?: string
  adminPassword?: string
  corsOrigins?: string[]
  wsMaxConnectionsPerAddress: number
  activePlugins: string[]
  pluginsDir: string
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL']
  tokenTtlMs: number
  bodyLimitBytes: number
  runWorker: boolean
  workerConcurrency: number
  workerLeaseMs: number
  workerPollMs: number
  shutdownGraceMs: number
  jobRetentionDays: number
  loginRateLimit: number
  loginRateWindowMs: number
  loginAddressRateLimit: number
  passwordHashConcurrency: number
  passwordHashQueueMax: number
  requestConcurrencyPerClient: number
  /** Job creation limits per owner (core/limits); 0 = no limit. */
  jobLimits: {
    user: { ratePerMinute: number; maxPending: number }
    plugin: { ratePerMinute: number; maxPending: number }
  }
  trustProxy?: string
}

/**
 * A pool sized for the runtime: each running attempt may hold a connection for a settle while
 * claims, lease renewals, HTTP reads and the log writer need theirs.
 */
function withPool(target: DatabaseTarget, poolMax: number): DatabaseTarget {
  return target.dialect === 'postgres' ? { ...target, poolMax } : target
}

export function parseDatabaseUrl(url: string | undefined): DatabaseTarget {
  if (!url) return { dialect: 'sqlite', filename: path.join(ROOT_DIR, 'data', 'jobpost.sqlite') }
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length)
    if (!file) throw new Error('DATABASE_URL "sqlite:" needs a path, or ":memory:".')
    return { dialect: 'sqlite', filename: file === ':memory:' ? ':memory:' : path.resolve(file) }
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    return { dialect: 'postgres', connectionString: url }
  }
  throw new Error(`DATABASE_URL must start with sqlite: or postgres:// (got ${JSON.stringify(url.split(':')[0])}).`)
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): JobpostConfig {
  const parsed = envSchema.safeParse(env)
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
    throw new Error(`Invalid configuration:\n  ${issues.join('\n  ')}`)
  }
  const e = parsed.data
  return {
    port: e.PORT,
    host: e.HOST,
    database: withPool(parseDatabaseUrl(e.DATABASE_URL), e.DATABASE_POOL_MAX ?? Math.max(20, e.WORKER_CONCURRENCY + 10)),
    adminEmail: e.ADMIN_EMAIL,
    adminPassword: e.ADMIN_PASSWORD,
    corsOrigins: e.CORS_ORIGINS,
    wsMaxConnectionsPerAddress: e.WS_MAX_CONNECTIONS_PER_ADDRESS,
    activePlugins: e.ACTIVE_PLUGINS,
    pluginsDir: path.join(ROOT_DIR, 'content', 'plugins'),
    logLevel: e.LOG_LEVEL,
    tokenTtlMs: e.TOKEN_TTL_HOURS * 3600 * 1000,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    runWorker: e.RUN_WORKER,
    workerConcurrency: e.WORKER_CONCURRENCY,
    workerLeaseMs: e.WORKER_LEASE_MS,
    workerPollMs: e.WORKER_POLL_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    jobRetentionDays: e.JOB_RETENTION_DAYS,
    loginRateLimit: e.LOGIN_RATE_LIMIT,
    loginRateWindowMs: e.LOGIN_RATE_WINDOW_MS,
    loginAddressRateLimit: e.LOGIN_ADDRESS_RATE_LIMIT,
    passwordHashConcurrency: e.PASSWORD_HASH_CONCURRENCY ?? Math.max(1, os.availableParallelism() - 1),
    passwordHashQueueMax: e.PASSWORD_HASH_QUEUE_MAX,
    requestConcurrencyPerClient: e.REQUEST_CONCURRENCY_PER_CLIENT,
    jobLimits: {
      user: { ratePerMinute: e.JOB_CREATE_RATE_PER_MINUTE ?? 600, maxPending: e.MAX_PENDING_PER_OWNER ?? 10_000 },
      plugin: { ratePerMinute: e.JOB_CREATE_RATE_PER_MINUTE ?? 100_000, maxPending: e.MAX_PENDING_PER_OWNER ?? 100_000 },
    },
    trustProxy: e.TRUST_PROXY,
  }
}

/** A config for tests and embedding: in-memory SQLite, no plugins, quiet logs, unless overridden. */
export function testConfig(overrides: Partial<JobpostConfig> = {}): JobpostConfig {
  return {
    ...loadConfig({ LOG_LEVEL: 'silent' }),
    database: { dialect: 'sqlite', filename: ':memory:' },
    activePlugins: [],
    port: 0,
    ...overrides,
  }
}
