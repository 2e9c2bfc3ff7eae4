import { testConfig, type DatabaseTarget } from '../../core/config.js'
import { createJobpost } from '../../core/createJobpost.js'
import { registerLogProcessors } from './processors.js'

/**
 * A worker process for the log tests (no HTTP): runs the processors of ./processors.ts on
 * DATABASE_URL (`postgres://...` or `sqlite:FILE`) with WORKER_LEASE_MS; prints READY <worker id>.
 */
const url = process.env.DATABASE_URL ?? ''
const database: DatabaseTarget = url.startsWith('postgres')
  ? { dialect: 'postgres', connectionString: url }
  : { dialect: 'sqlite', filename: url.replace(/^sqlite:/, '') }

const jobpost = await createJobpost(
  testConfig({
    database,
    runWorker: true,
    workerLeaseMs: Number(process.env.WORKER_LEASE_MS ?? 30_000),
    workerPollMs: 100,
    logLevel: 'warn',
  }),
  { serveHttp: false },
)
registerLogProcessors(jobpost.pluginHooks('logs-worker'))
await jobpost.listen()
process.stdout.write(`READY ${jobpost.runtime.workerId}\n`)

const shutdown = () => {
  jobpost
    .close({ graceMs: 2000 })
    .then(() => process.exit(0))
    .catch(() => process.exit(1))
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
