import type { Knex } from 'knex'
import { INDEXED_FIELD_CHARS, KV_VALUE_CHARS, SEARCH_META_KEYS, searchDocument } from '../core/store/jobs/search/document.js'

/**
 * Full-text search over jobs (issue 17): one index row per job, keyed by its post id, over its
 * name (post title), description, error message and the VALUES (never the keys) of its `data`
 * and `result` JSON; plus one token per scalar of `data` reachable by a plain object path
 * (`order.id`), so that `data.<path>=value` filters are an index lookup verified exactly.
 *
 * The index changes in the SAME transaction as the job's rows:
 * - SQLite: a contentless FTS5 table (`contentless_delete=1`: rows are replaced and deleted without
 *   their old text; nothing is stored twice), `unicode61` words, detail=column (column `body` the
 *   words, `kv` the data tokens of search/document.ts). The job store writes a job's row with its
 *   creates and changes (core/store/jobs/search/sqliteIndex.ts: the document is built in
 *   JavaScript, measured far cheaper than json_tree in triggers); a trigger deletes it with the
 *   post, whoever deletes that. Automerge is off: the store's maintain() merges in bounded steps.
 * - PostgreSQL: a `job_search` table (post_id, doc tsvector, kv text[]) with GIN indexes, kept by
 *   statement triggers on posts and post_meta (transition tables: one refresh per statement, not
 *   per row, so a batch of creates is one set-based refresh). Words come from the 'simple'
 *   configuration over the text with every non-alphanumeric run replaced by a space (so both
 *   dialects split words the same way); kv elements are `path=value` (value cut at 32 chars).
 *
 * Each indexed text is cut at 64 KB per field. Invalid JSON is indexed as plain text.
 */

const SEARCH_KEYS = `('description', 'data', 'result', 'error_message')`

export async function up(knex: Knex): Promise<void> {
  if (isSqlite(knex)) await upSqlite(knex)
  else await upPostgres(knex)
}

export async function down(knex: Knex): Promise<void> {
  if (isSqlite(knex)) {
    await knex.raw('DROP TRIGGER IF EXISTS job_search_post_delete')
    await knex.raw('DROP TABLE IF EXISTS job_search')
    return
  }
  for (const [table, events] of [['posts', ['insert', 'update', 'delete']], ['post_meta', ['insert', 'update', 'delete']]] as const) {
    for (const event of events) await knex.raw(`DROP TRIGGER IF EXISTS job_search_${table}_${event} ON ${table}`)
  }
  for (const fn of [
    'job_search_posts_changed()', 'job_search_meta_changed()', 'job_search_stale(integer[])', 'job_search_refresh(integer[])',
    'job_search_values(jsonb, boolean)', 'jobpost_try_jsonb(text)',
  ]) {
    await knex.raw(`DROP FUNCTION IF EXISTS ${fn}`)
  }
  await knex.raw('DROP TABLE IF EXISTS job_search')
}

// ------------------------------------------------------------------------------------------------
// SQLite

async function upSqlite(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE VIRTUAL TABLE job_search USING fts5(body, kv,
      tokenize = 'unicode61 remove_diacritics 0', detail = column, content = '', contentless_delete = 1)`)
  // Creates do not merge segments; the store's maintain() does, a bounded step at a time.
  await knex.raw(`INSERT INTO job_search (job_search, rank) VALUES ('automerge', 0)`)
  await knex.raw(`
    CREATE TRIGGER job_search_post_delete AFTER DELETE ON posts WHEN OLD.post_type_slug = 'jobs' BEGIN
      DELETE FROM job_search WHERE rowid = OLD.id;
    END`)
  // Jobs that exist already, in batches.
  const keys = SEARCH_META_KEYS.map((key) => `'${key}'`).join(', ')
  for (let after = 0; ; ) {
    const posts = (await knex.raw(`SELECT id, title FROM posts WHERE post_type_slug = 'jobs' AND id > ? ORDER BY id LIMIT 1000`, [after])) as { id: number; title: string }[]
    if (posts.length === 0) break
    const ids = posts.map((post) => post.id)
    const metaRows = (await knex.raw(
      `SELECT post_id, meta_key, meta_value FROM post_meta WHERE post_id IN (${ids.map(() => '?').join(', ')}) AND meta_key IN (${keys})`,
      ids,
    )) as { post_id: number; meta_key: string; meta_value: string | null }[]
    const meta = new Map<number, Record<string, string>>()
    for (const row of metaRows) if (row.meta_value !== null) meta.set(row.post_id, { ...meta.get(row.post_id), [row.meta_key]: row.meta_value })
    for (const post of posts) {
      const document = searchDocument(post.title, meta.get(post.id) ?? {})
      await knex.raw('INSERT INTO job_search (rowid, body, kv) VALUES (?, ?, ?)', [post.id, document.body, document.kv])
    }
    after = ids.at(-1)!
  }
  await knex.raw(`INSERT INTO job_search (job_search) VALUES ('optimize')`)
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL

async function upPostgres(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE job_search (
      post_id integer PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
      doc tsvector NOT NULL,
      kv text[] NOT NULL DEFAULT '{}',
      -- The statement that wrote the row: a refresh at the end of that statement is not needed.
      stmt timestamptz NOT NULL DEFAULT statement_timestamp()
    )`)
  await knex.raw(`CREATE INDEX job_search_doc_idx ON job_search USING gin (doc)`)
  await knex.raw(`CREATE INDEX job_search_kv_idx ON job_search USING gin (kv)`)
  // Invalid JSON is text, not an error that would fail the job's write.
  await knex.raw(`
    CREATE FUNCTION jobpost_try_jsonb(value text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $fn$
    BEGIN
      RETURN value::jsonb;
    EXCEPTION WHEN others THEN
      RETURN to_jsonb(value);
    END $fn$`)
  // Every scalar of a JSON value with its object path ('' when it sits inside an array).
  await knex.raw(`
    CREATE FUNCTION job_search_values(doc jsonb, with_paths boolean) RETURNS TABLE (path text, value text)
    LANGUAGE sql IMMUTABLE AS $fn$
      WITH RECURSIVE t(path, v, plain) AS (
        SELECT ''::text, doc, true
        UNION ALL
        SELECT CASE WHEN t.path = '' THEN c.k ELSE t.path || '.' || c.k END, c.v, t.plain AND c.plain
        FROM t CROSS JOIN LATERAL (
          SELECT e.key AS k, e.value AS v, e.key ~ '^[A-Za-z0-9_]+$' AS plain
            FROM jsonb_each(CASE WHEN jsonb_typeof(t.v) = 'object' THEN t.v ELSE '{}'::jsonb END) e
          UNION ALL
          SELECT '', a.value, false FROM jsonb_array_elements(CASE WHEN jsonb_typeof(t.v) = 'array' THEN t.v ELSE '[]'::jsonb END) a
        ) c
      )
      SELECT CASE WHEN with_paths AND plain AND path <> '' THEN path ELSE '' END, v #>> '{}'
      FROM t WHERE jsonb_typeof(v) IN ('string', 'number', 'boolean')
    $fn$`)
  await createSearchTriggerFunctions(knex)
  for (const event of ['insert', 'update', 'delete'] as const) {
    const refs = event === 'insert' ? 'NEW TABLE AS new_rows' : event === 'delete' ? 'OLD TABLE AS old_rows' : 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
    await knex.raw(`CREATE TRIGGER job_search_posts_${event} AFTER ${event.toUpperCase()} ON posts REFERENCING ${refs}
      FOR EACH STATEMENT EXECUTE FUNCTION job_search_posts_changed()`)
    await knex.raw(`CREATE TRIGGER job_search_post_meta_${event} AFTER ${event.toUpperCase()} ON post_meta REFERENCING ${refs}
      FOR EACH STATEMENT EXECUTE FUNCTION job_search_meta_changed()`)
  }
  // Jobs that exist already.
  await knex.raw(`SELECT job_search_refresh(ARRAY(SELECT id FROM posts WHERE post_type_slug = 'jobs'))`)
}

/**
 * The PostgreSQL functions the triggers run, as this migration made them (migration 013 replaces
 * them and, going down, puts these back).
 */
export async function createSearchTriggerFunctions(knex: Knex, replace = false): Promise<void> {
  const orReplace = replace ? 'OR REPLACE ' : ''
  await knex.raw(searchRefreshFunctionSql(replace, false))
  // Posts whose row this statement wrote already (the job store's create writes it with the job,
  // built in JavaScript: search/document.ts postgresSearchRow; or an earlier trigger of the same
  // statement, which saw every change of it) are not refreshed again.
  await knex.raw(`
    CREATE ${orReplace}FUNCTION job_search_stale(ids integer[]) RETURNS integer[] LANGUAGE sql STABLE AS $fn$
      SELECT ARRAY(SELECT id FROM unnest(ids) AS id
        WHERE NOT EXISTS (SELECT 1 FROM job_search s WHERE s.post_id = id AND s.stmt = statement_timestamp()))
    $fn$`)
  await knex.raw(`
    CREATE ${orReplace}FUNCTION job_search_posts_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        RETURN NULL; -- the index row goes with the post (ON DELETE CASCADE)
      ELSIF TG_OP = 'INSERT' THEN
        PERFORM job_search_refresh(job_search_stale(ARRAY(SELECT n.id FROM new_rows n WHERE n.post_type_slug = 'jobs')));
      ELSE
        PERFORM job_search_refresh(ARRAY(
          SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
          WHERE n.post_type_slug = 'jobs' AND n.title IS DISTINCT FROM o.title));
      END IF;
      RETURN NULL;
    END $fn$`)
  await knex.raw(`
    CREATE ${orReplace}FUNCTION job_search_meta_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE ids integer[];
    BEGIN
      IF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT DISTINCT post_id FROM new_rows WHERE meta_key IN ${SEARCH_KEYS});
      ELSIF TG_OP = 'DELETE' THEN
        ids := ARRAY(SELECT DISTINCT post_id FROM old_rows WHERE meta_key IN ${SEARCH_KEYS});
      ELSE
        ids := ARRAY(SELECT DISTINCT n.post_id FROM new_rows n
          WHERE n.meta_key IN ${SEARCH_KEYS}
            AND NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.post_id = n.post_id AND o.meta_key = n.meta_key AND o.meta_value IS NOT DISTINCT FROM n.meta_value));
      END IF;
      ids := job_search_stale(ids);
      IF cardinality(ids) > 0 THEN
        PERFORM job_search_refresh(ids);
      END IF;
      RETURN NULL;
    END $fn$`)
}

/**
 * `job_search_refresh(ids)`: rebuilds the index rows of these posts from their stored rows. With
 * `withOwner` (migration 014) `kv` also holds the creator's token (`@u:<id>`, search/document.ts).
 */
export function searchRefreshFunctionSql(replace: boolean, withOwner: boolean): string {
  const owner = withOwner
    ? ` || COALESCE((SELECT ARRAY['@u:' || j.created_by] FROM job_state j WHERE j.post_id = p.id AND j.created_by IS NOT NULL), '{}')`
    : ''
  return `
    CREATE ${replace ? 'OR REPLACE ' : ''}FUNCTION job_search_refresh(ids integer[]) RETURNS void LANGUAGE sql AS $fn$
      DELETE FROM job_search s WHERE s.post_id = ANY(ids)
        AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = s.post_id);
      INSERT INTO job_search (post_id, doc, kv)
      SELECT p.id,
        to_tsvector('simple', regexp_replace(p.title || ' ' || COALESCE((
          SELECT string_agg(v, ' ') FROM (
            SELECT left(m.meta_value, ${INDEXED_FIELD_CHARS}) AS v FROM post_meta m
              WHERE m.post_id = p.id AND m.meta_key IN ('description', 'error_message')
            UNION ALL
            SELECT left(x.value, ${INDEXED_FIELD_CHARS}) FROM post_meta m CROSS JOIN LATERAL job_search_values(jobpost_try_jsonb(m.meta_value), false) x
              WHERE m.post_id = p.id AND m.meta_key IN ('data', 'result')) f), ''), '[^[:alnum:]]+', ' ', 'g')),
        COALESCE((
          SELECT array_agg(DISTINCT x.path || '=' || left(x.value, ${KV_VALUE_CHARS}))
          FROM post_meta m CROSS JOIN LATERAL job_search_values(jobpost_try_jsonb(m.meta_value), true) x
          WHERE m.post_id = p.id AND m.meta_key = 'data' AND x.path <> ''), '{}')${owner}
      FROM posts p WHERE p.id = ANY(ids) AND p.post_type_slug = 'jobs'
      ON CONFLICT (post_id) DO UPDATE SET doc = EXCLUDED.doc, kv = EXCLUDED.kv, stmt = statement_timestamp();
    $fn$`
}

function isSqlite(knex: Knex): boolean {
  return String(knex.client.dialect).startsWith('sqlite')
}
