import type { Knex } from 'knex'

/**
 * Job logs and attempt history (issue 15).
 *
 * - `job_logs`: one row per line, keyed by (post_id, seq); `seq` is dense per job (1, 2, 3...),
 *   handed out in blocks by `job_log_state`, so a job's lines sort and page by the primary key
 *   (on SQLite the table is clustered by it: WITHOUT ROWID, one B-tree insert per line).
 *   `at` is integer ms (UTC); `fields` JSON text (or NULL).
 * - `job_log_state`: per job, the last `seq` handed out and how many lines were dropped (cut by
 *   the 10,000-line cap, or dropped before they were written). Its row lock on PostgreSQL orders
 *   concurrent writers of one job, so lines become visible in `seq` order.
 * - `job_attempts`: one row per run of a job: which instance, when, how it ended. `id` orders
 *   them (an attempt that was not counted, paused or interrupted by a shutdown, repeats its number);
 *   `token` names a run, so that its start and its end can be written in one batch with the lines.
 *
 * Every table goes with its job (ON DELETE CASCADE on posts), so deletion and retention remove
 * the lines and attempts too.
 */
export async function up(knex: Knex): Promise<void> {
  const bigint = isSqlite(knex) ? 'integer' : 'bigint'
  const id = isSqlite(knex) ? 'integer PRIMARY KEY AUTOINCREMENT' : 'bigserial PRIMARY KEY'
  await knex.raw(`
    CREATE TABLE job_logs (
      post_id integer NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
      seq ${bigint} NOT NULL,
      at ${bigint} NOT NULL,
      level varchar(8) NOT NULL,
      message text NOT NULL,
      fields text NULL,
      attempt integer NOT NULL DEFAULT 0,
      PRIMARY KEY (post_id, seq)
    )${isSqlite(knex) ? ' WITHOUT ROWID' : ''}`)
  await knex.raw(`
    CREATE TABLE job_log_state (
      post_id integer PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
      last_seq ${bigint} NOT NULL DEFAULT 0,
      dropped ${bigint} NOT NULL DEFAULT 0
    )`)
  await knex.raw(`
    CREATE TABLE job_attempts (
      id ${id},
      post_id integer NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
      attempt integer NOT NULL,
      /** Unique per run (written with its start, in the same batch as its end). */
      token varchar(64) NOT NULL,
      instance varchar(200) NULL,
      started_at ${bigint} NOT NULL,
      finished_at ${bigint} NULL,
      outcome varchar(16) NOT NULL,
      error text NULL
    )`)
  await knex.raw(`CREATE INDEX job_attempts_post_idx ON job_attempts (post_id, id)`)
  // Ending an open attempt (by post and token; lease expiry by post) stays on a tiny index.
  await knex.raw(`CREATE INDEX job_attempts_running_idx ON job_attempts (post_id, token) WHERE outcome = 'running'`)
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('job_attempts')
  await knex.schema.dropTableIfExists('job_log_state')
  await knex.schema.dropTableIfExists('job_logs')
}

function isSqlite(knex: Knex): boolean {
  return String(knex.client.dialect).startsWith('sqlite')
}
