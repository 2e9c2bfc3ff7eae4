import path from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import type { DatabaseTarget, JobpostConfig } from '../../../core/config.js'
import type { Jobpost } from '../../../core/createJobpost.js'
import { freshPostgresDatabase, startJobpost } from '../../support/harness.js'
import { tempDir, type Child } from './processes.js'

export interface SharedDatabase {
  /** A temporary folder (the SQLite file, event logs), removed after the tests. */
  readonly tmp: { dir: string; remove(): void }
  /** What worker child processes get as DATABASE_URL. */
  databaseUrl: string
  /** A Jobpost in this process on the same database (no runtime); undefined when PostgreSQL does not answer. */
  producer: Jobpost | undefined
  /** Child processes the tests start: killed (if still running) and awaited after the tests. */
  readonly children: Child[]
}

/**
 * One database shared by this process and worker child processes, for the reliability tests that
 * kill or stop processes: a SQLite file, or a fresh PostgreSQL database. Registers its own
 * beforeAll / afterAll in the calling describe.
 */
export function sharedDatabase(dialect: 'sqlite' | 'postgres', label: string, overrides: Partial<JobpostConfig> = {}): SharedDatabase {
  const shared: SharedDatabase = { tmp: tempDir(label), databaseUrl: '', producer: undefined, children: [] }
  let pg: Awaited<ReturnType<typeof freshPostgresDatabase>> = null
  beforeAll(async () => {
    let target: DatabaseTarget
    if (dialect === 'postgres') {
      pg = await freshPostgresDatabase(label)
      if (!pg) return
      shared.databaseUrl = pg.url
      target = { dialect: 'postgres', connectionString: pg.url }
    } else {
      const file = path.join(shared.tmp.dir, 'jobs.sqlite')
      shared.databaseUrl = `sqlite:${file}`
      target = { dialect: 'sqlite', filename: file }
    }
    shared.producer = await startJobpost({ database: target, ...overrides }, { listen: false })
  })
  afterAll(async () => {
    for (const child of shared.children) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL')
    await Promise.all(shared.children.map((child) => child.exited))
    await shared.producer?.close()
    await pg?.drop()
    shared.tmp.remove()
  })
  return shared
}
