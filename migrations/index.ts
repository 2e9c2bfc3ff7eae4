import type { Knex } from 'knex'
import * as core from './001_core.js'
import * as metaClustered from './002_meta_clustered.js'
import * as wsTicketSession from './003_ws_ticket_session.js'
import * as jobState from './004_job_state.js'
import * as notificationDismissals from './006_notification_dismissals.js'
import * as rateLimits from './005_rate_limits.js'
import * as jobSearch from './008_job_search.js'
import * as jobLogs from './007_job_logs.js'
import * as runtimeOutbox from './009_runtime_outbox.js'
import * as queueOrder from './010_queue_order.js'
import * as listSortIndexes from './011_list_sort_indexes.js'
import * as jobSearchPending from './012_job_search_pending.js'
import * as jobSearchTriggerCost from './013_job_search_trigger_cost.js'
import * as jobSearchOwner from './014_job_search_owner.js'

/** Every migration, in order. Listed explicitly so the same list runs from source, tests and CLI. */
const MIGRATIONS: Record<string, Knex.Migration> = {
  '001_core': core,
  '002_meta_clustered': metaClustered,
  '003_ws_ticket_session': wsTicketSession,
  '004_job_state': jobState,
  '005_rate_limits': rateLimits,
  '006_notification_dismissals': notificationDismissals,
  '007_job_logs': jobLogs,
  '008_job_search': jobSearch,
  '009_runtime_outbox': runtimeOutbox,
  '010_queue_order': queueOrder,
  '011_list_sort_indexes': listSortIndexes,
  '012_job_search_pending': jobSearchPending,
  '013_job_search_trigger_cost': jobSearchTriggerCost,
  '014_job_search_owner': jobSearchOwner,
}

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name]!,
}

export async function migrateLatest(knex: Knex): Promise<void> {
  await knex.migrate.latest({ migrationSource })
}

export async function migrateDown(knex: Knex): Promise<void> {
  await knex.migrate.rollback({ migrationSource }, true)
}
