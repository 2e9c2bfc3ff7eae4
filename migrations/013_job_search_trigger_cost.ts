import type { Knex } from 'knex'
import { createSearchTriggerFunctions } from './008_job_search.js'

/**
 * PostgreSQL: the search index's statement triggers (migration 008) cost a one-job create 1 ms,
 * two thirds of it (measured: 1.45 ms with them, 0.5 ms without), though the create writes its
 * index row itself: each trigger called `job_search_refresh` (a SQL function, planned afresh at
 * every call) even with no post to refresh, and `job_search_stale` (another). Now each trigger
 * finds the posts to refresh in one query of its own (plpgsql keeps its plan) and calls the refresh
 * only when there are some. Same results; SQLite has no such triggers.
 */
const SEARCH_KEYS = `('description', 'data', 'result', 'error_message')`
/** The end of both trigger functions: refresh the posts found, if any. */
const REFRESH_THEN_RETURN = `IF cardinality(ids) > 0 THEN PERFORM job_search_refresh(ids); END IF; RETURN NULL;`

export async function up(knex: Knex): Promise<void> {
  if (isSqlite(knex)) return
  // Posts whose row this statement wrote already (the job store's create, or an earlier trigger
  // of the same statement, which saw every change of it) are not refreshed again.
  await knex.raw(`
    CREATE OR REPLACE FUNCTION job_search_posts_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE ids integer[];
    BEGIN
      IF TG_OP = 'DELETE' THEN
        RETURN NULL; -- the index row goes with the post (ON DELETE CASCADE)
      ELSIF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT n.id FROM new_rows n WHERE n.post_type_slug = 'jobs'
          AND NOT EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = n.id AND s.stmt = statement_timestamp()));
      ELSE
        ids := ARRAY(SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
          WHERE n.post_type_slug = 'jobs' AND n.title IS DISTINCT FROM o.title);
      END IF;
      ${REFRESH_THEN_RETURN}
    END $fn$`)
  await knex.raw(`
    CREATE OR REPLACE FUNCTION job_search_meta_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE ids integer[];
    BEGIN
      IF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT DISTINCT n.post_id FROM new_rows n WHERE n.meta_key IN ${SEARCH_KEYS}
          AND NOT EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = n.post_id AND s.stmt = statement_timestamp()));
      ELSIF TG_OP = 'DELETE' THEN
        ids := ARRAY(SELECT DISTINCT o.post_id FROM old_rows o WHERE o.meta_key IN ${SEARCH_KEYS}
          AND NOT EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = o.post_id AND s.stmt = statement_timestamp()));
      ELSE
        ids := ARRAY(SELECT DISTINCT n.post_id FROM new_rows n
          WHERE n.meta_key IN ${SEARCH_KEYS}
            AND NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.post_id = n.post_id AND o.meta_key = n.meta_key AND o.meta_value IS NOT DISTINCT FROM n.meta_value)
            AND NOT EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = n.post_id AND s.stmt = statement_timestamp()));
      END IF;
      ${REFRESH_THEN_RETURN}
    END $fn$`)
  // The job store's create writes its rows' index entries and says so for its statement: the
  // triggers are not even called then.
  await recreateTriggers(knex, `WHEN (current_setting('jobpost.search_written', true) IS DISTINCT FROM statement_timestamp()::text)`)
}

export async function down(knex: Knex): Promise<void> {
  if (isSqlite(knex)) return
  await recreateTriggers(knex, '')
  await createSearchTriggerFunctions(knex, true)
}

async function recreateTriggers(knex: Knex, when: string): Promise<void> {
  for (const event of ['insert', 'update', 'delete'] as const) {
    const refs = event === 'insert' ? 'NEW TABLE AS new_rows' : event === 'delete' ? 'OLD TABLE AS old_rows' : 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
    for (const [table, fn] of [['posts', 'job_search_posts_changed'], ['post_meta', 'job_search_meta_changed']] as const) {
      await knex.raw(`DROP TRIGGER IF EXISTS job_search_${table}_${event} ON ${table}`)
      await knex.raw(`CREATE TRIGGER job_search_${table}_${event} AFTER ${event.toUpperCase()} ON ${table} REFERENCING ${refs}
        FOR EACH STATEMENT ${when} EXECUTE FUNCTION ${fn}()`)
    }
  }
}

function isSqlite(knex: Knex): boolean {
  return String(knex.client.dialect).startsWith('sqlite')
}
