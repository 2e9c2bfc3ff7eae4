import { loadConfig } from './config.js'
import { createJobpost } from './createJobpost.js'

/** `npm run worker`: only the job runtime (no HTTP), on the same database as the server. */
async function main() {
  const config = loadConfig()
  const jobpost = await createJobpost(config, { runWorker: true, serveHttp: false })
  await jobpost.listen()
  jobpost.logger.info({ worker: jobpost.runtime.workerId, database: config.database.dialect }, 'Jobpost worker started')
  const shutdown = (signal: string) => {
    jobpost.logger.info({ signal }, 'Worker shutting down gracefully')
    jobpost
      .close()
      .then(() => process.exit(0))
      .catch(() => process.exit(1))
  }
  process.once('SIGTERM', () => shutdown('SIGTERM'))
  process.once('SIGINT', () => shutdown('SIGINT'))
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
