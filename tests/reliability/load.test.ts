import { describe, it } from 'vitest'
import { soakAndCheck } from './support/soakCase.js'
import { sqliteTarget } from './support/soak.js'
import { tempDir } from './support/processes.js'

/**
 * The short soak run by `npm test` (and so by CI): a few thousand jobs through the real runtime
 * on a SQLite file, with random failures and graceful restarts. Size it with SOAK_CI_JOBS.
 * The full soak (100k jobs) is tests/soak/, run by `npm run test:soak`.
 */
const JOBS = Number(process.env.SOAK_CI_JOBS ?? 3000)

describe('load: jobs through the runtime with random failures and restarts', () => {
  it(`${JOBS} jobs: each final exactly once, handles, listeners and RSS back to baseline`, async () => {
    const tmp = tempDir('load')
    try {
      await soakAndCheck({
        jobs: JOBS,
        restarts: 3,
        database: sqliteTarget(tmp.dir),
        rssSlackMb: 150,
        log: process.env.SOAK_VERBOSE ? (message) => console.log(message) : undefined,
      })
    } finally {
      tmp.remove()
    }
  }, 240_000)
})
