import type { Knex } from 'knex'
import { searchRefreshFunctionSql } from './008_job_search.js'

/**
 * PostgreSQL: a job's index row also holds its creator (`@u:<id>` in `kv`), so that a search in a
 * user's own jobs (a subscriber's view) asks the GIN index for both at once. Without it, a common
 * word none of whose matches are the user's had each of the user's jobs checked by key (113 ms for
 * 33,000 jobs at a million); the bitmaps of the word and of the user, ANDed, are a few ms more than
 * the word's alone. The refresh function of the triggers writes the token too. SQLite: nothing (its
 * filter-driven plan starts from the user's jobs, search/sqliteSearch.ts).
 */
export async function up(knex: Knex): Promise<void> {
  if (isSqlite(knex)) return
  await knex.raw(searchRefreshFunctionSql(true, true))
  await knex.raw(`
    UPDATE job_search s SET kv = s.kv || ARRAY['@u:' || j.created_by]
    FROM job_state j WHERE j.post_id = s.post_id AND j.created_by IS NOT NULL AND NOT ('@u:' || j.created_by) = ANY(s.kv)`)
}

export async function down(knex: Knex): Promise<void> {
  if (isSqlite(knex)) return
  await knex.raw(searchRefreshFunctionSql(true, false))
  await knex.raw(`
    UPDATE job_search SET kv = ARRAY(SELECT e FROM unnest(kv) AS e WHERE e NOT LIKE '@u:%')
    WHERE EXISTS (SELECT 1 FROM unnest(kv) AS e WHERE e LIKE '@u:%')`)
}

function isSqlite(knex: Knex): boolean {
  return String(knex.client.dialect).startsWith('sqlite')
}
