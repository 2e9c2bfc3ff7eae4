import type { Database } from '../../db/createDatabase.js'
import type { JobStore } from './JobStore.js'
import { PostgresJobStore } from './PostgresJobStore.js'
import { SqliteJobStore } from './SqliteJobStore.js'

export type { JobStore } from './JobStore.js'

/** The job store of the database's dialect. */
export function createJobStore(db: Database): JobStore {
  return db.dialect === 'sqlite' ? new SqliteJobStore(db.knex) : new PostgresJobStore(db.knex)
}
