import { loadConfig } from './config.js'
import { createJobpost } from './createJobpost.js'

/** `npm start`: the CMS with HTTP, WebSocket and (unless RUN_WORKER=false) the job runtime. */
async function main() {
  const config = loadConfig()
  const jobpost = await createJobpost(config)
  const url = await jobpost.listen()
  jobpost.logger.info({ url, database: config.database.dialect }, `Jobpost is listening on ${url} (admin: ${url}/admin)`)
  let signals = 0
  const shutdown = (signal: string) => {
    signals++
    if (signals > 1) {
      jobpost.logger.warn('Second signal: exiting now')
      process.exit(1)
    }
    jobpost.logger.info({ signal }, 'Shutting down gracefully')
    jobpost
      .close()
      .then(() => process.exit(0))
      .catch((error) => {
        jobpost.logger.error({ err: error }, 'Shutdown failed')
        process.exit(1)
      })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
