import type { Knex } from 'knex'

/**
 * The outbox of job events (issue 12): on SQLite several processes (`npm start` and
 * `npm run worker`) share one file but no LISTEN/NOTIFY, so each process appends the job events it
 * emits here (a job id and a kind, no payload) and the others read what is new whenever
 * `PRAGMA data_version` says another connection committed. Rows live about a minute.
 * Created on PostgreSQL too (unused there: NOTIFY carries the events), so both schemas match.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('job_outbox', (t) => {
    t.increments('seq').primary()
    t.string('sender', 120).notNullable()
    t.string('job_id', 64).notNullable()
    /** `c` change, `w` change that made the job claimable, `p` progress, `d` deleted. */
    t.string('kind', 1).notNullable()
    t.integer('created_by').nullable()
    t.bigInteger('at').notNullable()
    t.index(['at'], 'job_outbox_at_idx')
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('job_outbox')
}
