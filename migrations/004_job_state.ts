import type { Knex } from 'knex'

/**
 * Storage for load: the fields the queue filters, sorts and fences on move from one meta row each
 * into one typed row per job (`job_state`, 1:1 with the job's post, the way WordPress keeps
 * post_status and post_parent on the post row). Name is the post title; description, icon,
 * metadata, data, result, error and plugin fields stay meta rows (only those that are set).
 *
 * Times are integers: ms since the epoch, UTC (one canonical form, compared as numbers).
 * `completed_at` is 0 while a job has not finished (so that it can lead a sortable index).
 *
 * Counters per (owner scope, type, status) and per minute are kept by triggers in the same
 * transaction as every write, so stats and tab totals cost O(types), never O(jobs):
 * - SQLite: row triggers update `job_counts` / `job_minute_counts` directly (writes are serial).
 * - PostgreSQL: statement triggers append to `job_count_deltas` / `job_minute_deltas` (insert-only,
 *   so concurrent transactions never wait on one hot counter row); readers add the deltas, and
 *   `foldJobCounters()` moves them into the totals now and then.
 * Scope `''` counts every job; `u:<user id>` the jobs a user created; `p:<source>` a plugin's.
 */

const PROCESSED = `('completed', 'completed_with_errors', 'failed')`

export async function up(knex: Knex): Promise<void> {
  const sqlite = isSqlite(knex)
  const bigint = sqlite ? 'integer' : 'bigint'
  await knex.raw(`
    CREATE TABLE job_state (
      post_id integer PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
      type varchar(100) NOT NULL,
      status varchar(24) NOT NULL,
      queued smallint NOT NULL DEFAULT 0,
      delayed smallint NOT NULL DEFAULT 0,
      priority integer NOT NULL DEFAULT 0,
      run_at ${bigint} NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      max_attempts integer NOT NULL DEFAULT 1,
      attempt_token varchar(64) NULL,
      locked_until ${bigint} NULL,
      progress smallint NOT NULL DEFAULT 0,
      timeout_ms ${bigint} NULL,
      show_notification smallint NOT NULL DEFAULT 1,
      created_by integer NULL REFERENCES users (id) ON DELETE SET NULL,
      owner varchar(110) NULL,
      source varchar(100) NULL,
      parent_job_id varchar(64) NULL,
      paused_from varchar(24) NULL,
      created_at ${bigint} NOT NULL,
      updated_at ${bigint} NOT NULL,
      started_at ${bigint} NULL,
      completed_at ${bigint} NOT NULL DEFAULT 0
    )`)
  const indexes = [
    // The claim: per type, due, highest priority then oldest; delayed jobs sit in their own index.
    `CREATE INDEX job_state_claim_idx ON job_state (type, priority DESC, run_at, post_id) WHERE status = 'pending' AND queued = 1 AND delayed = 0`,
    `CREATE INDEX job_state_delayed_idx ON job_state (run_at) WHERE status = 'pending' AND delayed = 1`,
    `CREATE INDEX job_state_lease_idx ON job_state (locked_until) WHERE locked_until IS NOT NULL`,
    // Lease renewal by token; only running attempts hold one, so the index stays small.
    `CREATE INDEX job_state_token_idx ON job_state (attempt_token) WHERE attempt_token IS NOT NULL`,
    // Lists: each status tab newest first, by type, by owner; finished jobs by completion time.
    `CREATE INDEX job_state_status_created_idx ON job_state (status, created_at, post_id)`,
    `CREATE INDEX job_state_type_status_created_idx ON job_state (type, status, created_at, post_id)`,
    `CREATE INDEX job_state_owner_status_created_idx ON job_state (created_by, status, created_at, post_id) WHERE created_by IS NOT NULL`,
    `CREATE INDEX job_state_status_completed_idx ON job_state (status, completed_at, post_id)`,
    `CREATE INDEX job_state_parent_idx ON job_state (parent_job_id, post_id) WHERE parent_job_id IS NOT NULL`,
  ]
  for (const sql of indexes) await knex.raw(sql)

  await knex.raw(`
    CREATE TABLE job_counts (
      owner varchar(110) NOT NULL, type varchar(100) NOT NULL, status varchar(24) NOT NULL,
      n ${bigint} NOT NULL DEFAULT 0,
      PRIMARY KEY (owner, type, status)
    )`)
  await knex.raw(`
    CREATE TABLE job_minute_counts (
      owner varchar(110) NOT NULL, minute ${bigint} NOT NULL,
      created ${bigint} NOT NULL DEFAULT 0, completed ${bigint} NOT NULL DEFAULT 0, failed ${bigint} NOT NULL DEFAULT 0,
      finished ${bigint} NOT NULL DEFAULT 0, duration_ms ${bigint} NOT NULL DEFAULT 0,
      PRIMARY KEY (owner, minute)
    )`)

  await copyLegacyJobs(knex, sqlite)

  // Totals of what was copied, then the triggers keep them.
  await knex.raw(`
    INSERT INTO job_counts (owner, type, status, n)
    SELECT '', type, status, COUNT(*) FROM job_state GROUP BY type, status
    UNION ALL SELECT owner, type, status, COUNT(*) FROM job_state WHERE owner IS NOT NULL GROUP BY owner, type, status`)
  if (sqlite) await createSqliteTriggers(knex)
  else await createPostgresTriggers(knex)
}

/** Jobs written by the one-meta-row-per-field storage get their typed row; the moved meta goes. */
async function copyLegacyJobs(knex: Knex, sqlite: boolean): Promise<void> {
  const meta = (key: string) => `(SELECT m.meta_value FROM post_meta m WHERE m.post_id = p.id AND m.meta_key = '${key}')`
  const ms = (expr: string) =>
    sqlite
      ? `CAST(ROUND((julianday(${expr}) - 2440587.5) * 86400000.0) AS INTEGER)`
      : `(EXTRACT(EPOCH FROM CAST(${expr} AS timestamptz)) * 1000)::bigint`
  const int = (expr: string, fallback: number) => `COALESCE(CAST(${expr} AS integer), ${fallback})`
  const author = '(SELECT MIN(a.user_id) FROM post_authors a WHERE a.post_id = p.id)'
  const nowMs = Date.now()
  await knex.raw(`
    INSERT INTO job_state (post_id, type, status, queued, delayed, priority, run_at, attempts, max_attempts,
      attempt_token, locked_until, progress, timeout_ms, show_notification, created_by, owner, source,
      parent_job_id, paused_from, created_at, updated_at, started_at, completed_at)
    SELECT p.id, COALESCE(${meta('type')}, ''), COALESCE(${meta('status')}, 'pending'),
      CASE WHEN ${meta('queued')} = '1' THEN 1 ELSE 0 END,
      CASE WHEN COALESCE(${meta('status')}, 'pending') = 'pending' AND ${ms(`COALESCE(${meta('run_at')}, p.created_at)`)} > ${nowMs} THEN 1 ELSE 0 END,
      ${int(meta('priority'), 0)}, ${ms(`COALESCE(${meta('run_at')}, p.created_at)`)},
      ${int(meta('attempts'), 0)}, ${int(meta('max_attempts'), 1)},
      ${meta('attempt_token')}, ${ms(meta('locked_until'))},
      ${int(meta('progress'), 0)}, CAST(${meta('timeout')} AS ${sqlite ? 'integer' : 'bigint'}),
      CASE WHEN ${meta('show_notification')} = '0' THEN 0 ELSE 1 END,
      ${author},
      CASE WHEN ${author} IS NOT NULL THEN 'u:' || ${author} WHEN ${meta('source')} IS NOT NULL THEN 'p:' || ${meta('source')} ELSE NULL END,
      ${meta('source')}, ${meta('parent_job_id')}, ${meta('paused_from')},
      ${ms('p.created_at')}, ${ms('p.updated_at')}, ${ms(meta('started_at'))},
      COALESCE(${ms(meta('completed_at'))}, 0)
    FROM posts p WHERE p.post_type_slug = 'jobs'`)
  // The name is the post title already; the rest of the moved fields are now columns.
  const moved = [
    'job_id', 'name', 'type', 'status', 'progress', 'source', 'show_notification', 'timeout', 'priority',
    'attempts', 'max_attempts', 'run_at', 'started_at', 'completed_at', 'parent_job_id', 'queued',
    'queue_order', 'locked_until', 'attempt_token', 'paused_from',
  ]
  await knex.raw(
    `DELETE FROM post_meta WHERE post_id IN (SELECT post_id FROM job_state) AND meta_key IN (${moved.map((key) => `'${key}'`).join(', ')})`,
  )
  // Empty defaults are not stored any more either.
  await knex.raw(
    `DELETE FROM post_meta WHERE post_id IN (SELECT post_id FROM job_state) AND ((meta_key = 'description' AND meta_value = '') OR (meta_key = 'metadata' AND meta_value = '{}'))`,
  )
  // Jobs no longer need author rows: created_by is a column.
  await knex.raw(`DELETE FROM post_authors WHERE post_id IN (SELECT post_id FROM job_state)`)
  // Only jobs had these keys (batch items keep parent_job_id and its index).
  for (const key of ['queue_order', 'locked_until']) {
    await knex.raw(`DROP INDEX IF EXISTS post_meta_${key}_idx`)
  }
}

async function createSqliteTriggers(knex: Knex): Promise<void> {
  const bump = (owner: string, type: string, status: string, n: string) =>
    `INSERT INTO job_counts (owner, type, status, n) VALUES (${owner}, ${type}, ${status}, ${n})
       ON CONFLICT (owner, type, status) DO UPDATE SET n = n + excluded.n;`
  const minute = (owner: string, at: string, columns: string, values: string, set: string) =>
    `INSERT INTO job_minute_counts (owner, minute, ${columns}) VALUES (${owner}, (${at}) / 60000 * 60000, ${values})
       ON CONFLICT (owner, minute) DO UPDATE SET ${set};`
  const finish = (owner: string) =>
    minute(
      owner,
      'NEW.completed_at',
      'completed, failed, finished, duration_ms',
      `CASE WHEN NEW.status = 'failed' THEN 0 ELSE 1 END, CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END, 1,
       CASE WHEN NEW.started_at IS NULL THEN 0 ELSE NEW.completed_at - NEW.started_at END`,
      `completed = completed + excluded.completed, failed = failed + excluded.failed,
       finished = finished + 1, duration_ms = duration_ms + excluded.duration_ms`,
    )
  await knex.raw(`
    CREATE TRIGGER job_state_counted_insert AFTER INSERT ON job_state BEGIN
      ${bump("''", 'NEW.type', 'NEW.status', '1')}
      ${minute("''", 'NEW.created_at', 'created', '1', 'created = created + 1')}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_insert_owner AFTER INSERT ON job_state WHEN NEW.owner IS NOT NULL BEGIN
      ${bump('NEW.owner', 'NEW.type', 'NEW.status', '1')}
      ${minute('NEW.owner', 'NEW.created_at', 'created', '1', 'created = created + 1')}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_update AFTER UPDATE OF status ON job_state WHEN OLD.status <> NEW.status BEGIN
      ${bump("''", 'OLD.type', 'OLD.status', '-1')}
      ${bump("''", 'NEW.type', 'NEW.status', '1')}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_update_owner AFTER UPDATE OF status ON job_state
      WHEN OLD.status <> NEW.status AND NEW.owner IS NOT NULL BEGIN
      ${bump('NEW.owner', 'OLD.type', 'OLD.status', '-1')}
      ${bump('NEW.owner', 'NEW.type', 'NEW.status', '1')}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_finish AFTER UPDATE OF status ON job_state
      WHEN OLD.status <> NEW.status AND NEW.status IN ${PROCESSED} BEGIN
      ${finish("''")}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_finish_owner AFTER UPDATE OF status ON job_state
      WHEN OLD.status <> NEW.status AND NEW.status IN ${PROCESSED} AND NEW.owner IS NOT NULL BEGIN
      ${finish('NEW.owner')}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_delete AFTER DELETE ON job_state BEGIN
      ${bump("''", 'OLD.type', 'OLD.status', '-1')}
    END`)
  await knex.raw(`
    CREATE TRIGGER job_state_counted_delete_owner AFTER DELETE ON job_state WHEN OLD.owner IS NOT NULL BEGIN
      ${bump('OLD.owner', 'OLD.type', 'OLD.status', '-1')}
    END`)
}

async function createPostgresTriggers(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE job_count_deltas (owner varchar(110) NOT NULL, type varchar(100) NOT NULL, status varchar(24) NOT NULL, n bigint NOT NULL)`)
  await knex.raw(`CREATE INDEX job_count_deltas_owner_idx ON job_count_deltas (owner)`)
  await knex.raw(`
    CREATE TABLE job_minute_deltas (owner varchar(110) NOT NULL, minute bigint NOT NULL, created bigint NOT NULL,
      completed bigint NOT NULL, failed bigint NOT NULL, finished bigint NOT NULL, duration_ms bigint NOT NULL)`)
  await knex.raw(`CREATE INDEX job_minute_deltas_owner_idx ON job_minute_deltas (owner, minute)`)
  // One function per event; each appends grouped deltas for the whole statement (both scopes).
  await knex.raw(`
    CREATE FUNCTION job_state_counted_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      INSERT INTO job_count_deltas (owner, type, status, n)
        SELECT '', type, status, COUNT(*) FROM new_rows GROUP BY type, status
        UNION ALL SELECT owner, type, status, COUNT(*) FROM new_rows WHERE owner IS NOT NULL GROUP BY owner, type, status;
      INSERT INTO job_minute_deltas (owner, minute, created, completed, failed, finished, duration_ms)
        SELECT '', created_at / 60000 * 60000, COUNT(*), 0, 0, 0, 0 FROM new_rows GROUP BY 2
        UNION ALL SELECT owner, created_at / 60000 * 60000, COUNT(*), 0, 0, 0, 0 FROM new_rows WHERE owner IS NOT NULL GROUP BY 1, 2;
      RETURN NULL;
    END $fn$`)
  await knex.raw(`
    CREATE FUNCTION job_state_counted_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      INSERT INTO job_count_deltas (owner, type, status, n)
        SELECT scope, type, status, SUM(n) FROM (
          SELECT o.owner AS owner, o.type, o.status, -1 AS n FROM old_rows o JOIN new_rows w ON w.post_id = o.post_id WHERE o.status <> w.status
          UNION ALL SELECT w.owner, w.type, w.status, 1 FROM old_rows o JOIN new_rows w ON w.post_id = o.post_id WHERE o.status <> w.status
        ) changed CROSS JOIN LATERAL (VALUES (''), (changed.owner)) AS scopes(scope)
        WHERE scope IS NOT NULL GROUP BY scope, type, status HAVING SUM(n) <> 0;
      INSERT INTO job_minute_deltas (owner, minute, created, completed, failed, finished, duration_ms)
        SELECT scope, w.completed_at / 60000 * 60000, 0,
          SUM(CASE WHEN w.status = 'failed' THEN 0 ELSE 1 END), SUM(CASE WHEN w.status = 'failed' THEN 1 ELSE 0 END),
          COUNT(*), SUM(CASE WHEN w.started_at IS NULL THEN 0 ELSE w.completed_at - w.started_at END)
        FROM old_rows o JOIN new_rows w ON w.post_id = o.post_id
        CROSS JOIN LATERAL (VALUES (''), (w.owner)) AS scopes(scope)
        WHERE o.status <> w.status AND w.status IN ${PROCESSED} AND scope IS NOT NULL
        GROUP BY scope, 2;
      RETURN NULL;
    END $fn$`)
  await knex.raw(`
    CREATE FUNCTION job_state_counted_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      INSERT INTO job_count_deltas (owner, type, status, n)
        SELECT '', type, status, -COUNT(*) FROM old_rows GROUP BY type, status
        UNION ALL SELECT owner, type, status, -COUNT(*) FROM old_rows WHERE owner IS NOT NULL GROUP BY owner, type, status;
      RETURN NULL;
    END $fn$`)
  await knex.raw(`CREATE TRIGGER job_state_counted_insert AFTER INSERT ON job_state REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_state_counted_insert()`)
  await knex.raw(`CREATE TRIGGER job_state_counted_update AFTER UPDATE ON job_state REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_state_counted_update()`)
  await knex.raw(`CREATE TRIGGER job_state_counted_delete AFTER DELETE ON job_state REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_state_counted_delete()`)
}

export async function down(knex: Knex): Promise<void> {
  const sqlite = isSqlite(knex)
  if (!sqlite) {
    for (const name of ['insert', 'update', 'delete']) {
      await knex.raw(`DROP TRIGGER IF EXISTS job_state_counted_${name} ON job_state`)
      await knex.raw(`DROP FUNCTION IF EXISTS job_state_counted_${name}()`)
    }
    await knex.schema.dropTableIfExists('job_count_deltas')
    await knex.schema.dropTableIfExists('job_minute_deltas')
  }
  // Back to one meta row per field, so the previous storage reads every job as it was.
  const iso = (expr: string) =>
    sqlite
      ? `strftime('%Y-%m-%dT%H:%M:%fZ', (${expr}) / 1000.0, 'unixepoch')`
      : `to_char(to_timestamp((${expr}) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
  const text = (expr: string) => (sqlite ? `CAST(${expr} AS text)` : `(${expr})::text`)
  const rows: [string, string][] = [
    ['job_id', 'p.slug'], ['name', 'p.title'], ['type', 'j.type'], ['status', 'j.status'],
    ['progress', text('j.progress')], ['show_notification', text('j.show_notification')],
    ['priority', text('j.priority')], ['attempts', text('j.attempts')], ['max_attempts', text('j.max_attempts')],
    ['run_at', iso('j.run_at')], ['source', 'j.source'], ['timeout', text('j.timeout_ms')],
    ['started_at', `CASE WHEN j.started_at IS NULL THEN NULL ELSE ${iso('j.started_at')} END`],
    ['completed_at', `CASE WHEN j.completed_at = 0 THEN NULL ELSE ${iso('j.completed_at')} END`],
    ['parent_job_id', 'j.parent_job_id'], ['queued', `CASE WHEN j.queued = 1 THEN '1' ELSE NULL END`],
    ['queue_order', `CASE WHEN j.status = 'pending' AND j.queued = 1 THEN ${sqlite ? "printf('%04d', 1000 - j.priority)" : "lpad((1000 - j.priority)::text, 4, '0')"} || '|' || ${iso('j.run_at')} ELSE NULL END`],
    ['locked_until', `CASE WHEN j.locked_until IS NULL THEN NULL ELSE ${iso('j.locked_until')} END`],
    ['attempt_token', 'j.attempt_token'], ['paused_from', 'j.paused_from'],
  ]
  for (const [key, expr] of rows) {
    await knex.raw(`INSERT INTO post_meta (post_id, meta_key, meta_value)
      SELECT j.post_id, '${key}', ${expr} FROM job_state j JOIN posts p ON p.id = j.post_id WHERE ${expr} IS NOT NULL`)
  }
  await knex.raw(`INSERT INTO post_meta (post_id, meta_key, meta_value) SELECT post_id, 'description', '' FROM job_state j
    WHERE NOT EXISTS (SELECT 1 FROM post_meta m WHERE m.post_id = j.post_id AND m.meta_key = 'description')`)
  await knex.raw(`INSERT INTO post_meta (post_id, meta_key, meta_value) SELECT post_id, 'metadata', '{}' FROM job_state j
    WHERE NOT EXISTS (SELECT 1 FROM post_meta m WHERE m.post_id = j.post_id AND m.meta_key = 'metadata')`)
  await knex.raw(`INSERT INTO post_authors (post_id, user_id) SELECT post_id, created_by FROM job_state WHERE created_by IS NOT NULL`)
  for (const key of ['queue_order', 'locked_until']) {
    await knex.raw(`CREATE INDEX IF NOT EXISTS post_meta_${key}_idx ON post_meta (meta_value, post_id) WHERE meta_key = '${key}'`)
  }
  await knex.schema.dropTableIfExists('job_minute_counts')
  await knex.schema.dropTableIfExists('job_counts')
  await knex.schema.dropTableIfExists('job_state')
}

function isSqlite(knex: Knex): boolean {
  return String(knex.client.dialect).startsWith('sqlite')
}
