import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { CHECKPOINT_SAFETY_PAGES, SqliteCheckpointer } from './sqliteCheckpointer.js'
import knexFactory, { type Knex } from 'knex'
import type { DatabaseTarget } from '../config.js'

const require = createRequire(import.meta.url)
// knex ships its dialect classes as CommonJS; we extend the better-sqlite3 client below.
const ClientBetterSqlite3: new (...args: any[]) => any = require('knex/lib/dialects/better-sqlite3/index.js')
const TransactionSqlite: new (...args: any[]) => any = require('knex/lib/dialects/sqlite3/execution/sqlite-transaction.js')

export type Dialect = 'sqlite' | 'postgres'

export interface Database {
  readonly knex: Knex
  readonly dialect: Dialect
  /** Runs `work` in one write transaction (BEGIN IMMEDIATE on SQLite). */
  transaction<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/**
 * Writes on SQLite start with BEGIN IMMEDIATE: the write lock is taken up front and waits under
 * busy_timeout, instead of a deferred transaction failing with SQLITE_BUSY when it upgrades.
 */
class ImmediateTransaction extends TransactionSqlite {
  begin(conn: unknown) {
    return (this as any).query(conn, 'BEGIN IMMEDIATE;')
  }
}

const statementCache = new WeakMap<object, Map<string, any>>()
const STATEMENT_CACHE_SIZE = 200

/** The file a connection opened (device + inode), to notice it being removed or replaced. */
interface OpenedFile {
  dev: number
  ino: number
  checkedAt: number
  gone: boolean
}
const openedFiles = new WeakMap<object, OpenedFile>()
const FILE_CHECK_MS = 100

function statFile(filename: string): { dev: number; ino: number } | null {
  try {
    const stat = fs.statSync(filename)
    return { dev: stat.dev, ino: stat.ino }
  } catch {
    return null
  }
}

/** SQLITE_CANTOPEN is "database unavailable" (503) to the HTTP layer. */
function fileGone(filename: string): Error {
  return Object.assign(new Error(`The database file ${filename} was removed or replaced.`), { code: 'SQLITE_CANTOPEN' })
}

/**
 * better-sqlite3 client with immediate transactions and a small prepared-statement cache. A
 * removed database file would otherwise go on taking writes into the unlinked inode (lost at the
 * next start): while it is missing, work outside a transaction fails as unavailable, and a file
 * put back in its place (same inode, or a replacement, which gets a new connection) is used again.
 */
class JobpostSqliteClient extends ClientBetterSqlite3 {
  transaction(...args: unknown[]) {
    return new ImmediateTransaction(this, ...(args as []))
  }

  async acquireRawConnection() {
    const filename: string = (this as any).connectionSettings.filename
    const file = filename === ':memory:' ? null : statFile(filename)
    // A reconnect must not create an empty database where the real one went missing.
    if (filename !== ':memory:' && !file && (this as any).openedOnce) throw fileGone(filename)
    const connection = await super.acquireRawConnection()
    if (filename !== ':memory:') {
      ;(this as any).openedOnce = true
      const opened = statFile(filename)
      if (opened) openedFiles.set(connection, { ...opened, checkedAt: Date.now(), gone: false })
    }
    return connection
  }

  /** A connection to a file that was replaced is dropped by the pool, and a new one opened. */
  validateConnection(connection: any) {
    const opened = openedFiles.get(connection)
    if (!opened) return true
    const current = statFile((this as any).connectionSettings.filename)
    return !current || (current.dev === opened.dev && current.ino === opened.ino)
  }

  private assertFileInPlace(connection: any) {
    const opened = openedFiles.get(connection)
    // Inside a transaction the file was in place at BEGIN; ROLLBACK must always get through.
    if (!opened || connection.inTransaction) return
    const filename: string = (this as any).connectionSettings.filename
    const now = Date.now()
    if (now - opened.checkedAt >= FILE_CHECK_MS) {
      opened.checkedAt = now
      const current = statFile(filename)
      opened.gone = !current || current.dev !== opened.dev || current.ino !== opened.ino
    }
    if (opened.gone) throw fileGone(filename)
  }

  async _query(connection: any, obj: any) {
    if (!obj.sql) throw new Error('The query is empty')
    this.assertFileInPlace(connection)
    let cache = statementCache.get(connection)
    if (!cache) statementCache.set(connection, (cache = new Map()))
    let statement = cache.get(obj.sql)
    if (!statement) {
      statement = connection.prepare(obj.sql)
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!)
      cache.set(obj.sql, statement)
    }
    const bindings = (this as any)._formatBindings(obj.bindings)
    if (statement.reader) {
      obj.response = statement.all(bindings)
      return obj
    }
    const response = statement.run(bindings)
    obj.response = response
    obj.context = { lastID: response.lastInsertRowid, changes: response.changes }
    return obj
  }
}

/** Pragmas set on every SQLite connection; busy_timeout first so that switching to WAL can wait. */
function configureSqliteConnection(conn: any, filename: string) {
  conn.pragma('busy_timeout = 5000')
  if (filename !== ':memory:') conn.pragma('journal_mode = WAL')
  conn.pragma('foreign_keys = ON')
  conn.pragma('synchronous = NORMAL')
  // 64 MB of page cache (the default is 2 MB): cleanup of 100k jobs touches the meta B-tree and
  // three partial indexes; measured 17.9 s → 8.2 s at 300k jobs (docs/PERFORMANCE.md).
  conn.pragma('cache_size = -65536')
  // Checkpoints run on a worker thread (sqliteCheckpointer.ts); this connection only past the net.
  if (filename !== ':memory:') conn.pragma(`wal_autocheckpoint = ${CHECKPOINT_SAFETY_PAGES}`)
}

export function createDatabase(target: DatabaseTarget): Database {
  if (target.dialect === 'sqlite') {
    if (target.filename !== ':memory:') fs.mkdirSync(path.dirname(target.filename), { recursive: true })
    const knex = knexFactory({
      client: JobpostSqliteClient as any,
      connection: { filename: target.filename },
      useNullAsDefault: true,
      // One connection per process: better-sqlite3 is synchronous, and one connection lets knex
      // queue queries behind an open transaction instead of interleaving with it.
      pool: {
        min: 1,
        max: 1,
        afterCreate: (conn: any, done: (err: Error | null, conn: unknown) => void) => {
          try {
            configureSqliteConnection(conn, target.filename)
            done(null, conn)
          } catch (err) {
            done(err as Error, conn)
          }
        },
      },
    })
    const checkpointer = target.filename === ':memory:' ? null : new SqliteCheckpointer(target.filename)
    return wrap(knex, 'sqlite', () => checkpointer?.stop())
  }
  const knex = knexFactory({
    client: 'pg',
    connection: { connectionString: target.connectionString },
    pool: {
      min: 0,
      max: target.poolMax ?? 20,
      afterCreate: (conn: any, done: (err: Error | null, conn: unknown) => void) => {
        conn.query("SET TIME ZONE 'UTC'", (err: Error | null) => done(err, conn))
      },
    },
  })
  return wrap(knex, 'postgres')
}

function wrap(knex: Knex, dialect: Dialect, beforeClose?: () => Promise<void> | undefined): Database {
  let closed = false
  return {
    knex,
    dialect,
    transaction: (work) => knex.transaction(work),
    async close() {
      if (closed) return
      closed = true
      await beforeClose?.()
      await knex.destroy()
    },
  }
}
