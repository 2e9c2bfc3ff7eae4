import { afterAll, beforeAll, describe, it } from 'vitest'
import { freshPostgresDatabase } from '../support/harness.js'
import { tempDir } from '../reliability/support/processes.js'
import { sqliteTarget } from '../reliability/support/soak.js'
import { soakAndCheck } from '../reliability/support/soakCase.js'

/**
 * The full soak (`npm run test:soak`): SOAK_JOBS (default 100,000) jobs through the runtime with
 * random retryable and unrecoverable failures and SOAK_RESTARTS (default 10) graceful restarts,
 * on a SQLite file and on PostgreSQL. Every job must reach a final state exactly once, and open
 * handles, listeners and RSS must come back to their baseline. `npm test` runs a short version
 * (tests/reliability/load.test.ts, SOAK_CI_JOBS).
 */
const JOBS = Number(process.env.SOAK_JOBS ?? 100_000)
const RESTARTS = Number(process.env.SOAK_RESTARTS ?? 10)
const log = (message: string) => console.log(`[soak] ${message}`)

describe(`soak: ${JOBS} jobs, ${RESTARTS} restarts`, () => {
  it('on a SQLite file', async () => {
    const tmp = tempDir('soak')
    try {
      await soakAndCheck({ jobs: JOBS, restarts: RESTARTS, database: sqliteTarget(tmp.dir), rssSlackMb: 250, log, seed: 7 })
    } finally {
      tmp.remove()
    }
  })

  describe('on PostgreSQL', () => {
    let database: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
    beforeAll(async () => {
      database = await freshPostgresDatabase('soak')
    })
    afterAll(() => database?.drop())

    it('with the same promise', async (ctx) => {
      if (!database) return ctx.skip()
      await soakAndCheck({
        jobs: JOBS,
        restarts: RESTARTS,
        database: { dialect: 'postgres', connectionString: database.url },
        rssSlackMb: 250,
        log,
        seed: 11,
      })
    })
  })
})
