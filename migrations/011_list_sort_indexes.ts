import type { Knex } from 'knex'

/**
 * Lists sorted by run time or by priority (the admin's sortable columns, `sort=runAt|priority`)
 * walk an index range per status like the default sort, instead of sorting every job of the
 * status: at a million jobs that sort held SQLite's event loop for seconds.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE INDEX job_state_status_run_at_idx ON job_state (status, run_at, post_id)`)
  await knex.raw(`CREATE INDEX job_state_status_priority_idx ON job_state (status, priority, post_id)`)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP INDEX IF EXISTS job_state_status_run_at_idx`)
  await knex.raw(`DROP INDEX IF EXISTS job_state_status_priority_idx`)
}
