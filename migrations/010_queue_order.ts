import type { Knex } from 'knex'

/**
 * The Queue view (issue 16). Due jobs of a type are listed along the claim index
 * (`job_state_claim_idx`: type, priority DESC, run_at, post_id), in the very order the runtime
 * claims them. Delayed jobs of a type are listed by run time: this partial index (delayed jobs
 * only, so it costs nothing to the rest) serves that page without reading the other pending jobs
 * of the type or sorting them.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `CREATE INDEX job_state_delayed_type_idx ON job_state (type, run_at, post_id) WHERE status = 'pending' AND delayed = 1`,
  )
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP INDEX IF EXISTS job_state_delayed_type_idx`)
}
