import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/**
 * Search statements of a SQLite file database run on a read-only connection in a worker thread,
 * so that a costly one (a prefix shared by a million jobs is merged in one statement by FTS5) never
 * holds the event loop: the loop only posts the statement and receives its rows. The database is
 * in WAL mode, so this reader sees every committed write and never blocks a writer.
 * (`:memory:` databases cannot be opened twice: their searches run on the store's connection.)
 */

const require = createRequire(import.meta.url)

/** Runs in the worker (CommonJS, eval'd): one connection, statements prepared once. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.filename, { readonly: true, fileMustExist: true })
db.pragma('busy_timeout = 5000')
db.pragma('cache_size = -65536')
const statements = new Map()
parentPort.on('message', ({ id, sql, values }) => {
  try {
    let statement = statements.get(sql)
    if (!statement) {
      statement = db.prepare(sql)
      statements.set(sql, statement)
      if (statements.size > 200) statements.delete(statements.keys().next().value)
    }
    parentPort.postMessage({ id, rows: statement.all(...values) })
  } catch (error) {
    parentPort.postMessage({ id, error: { message: String(error && error.message), code: error && error.code } })
  }
})
`

interface Reply {
  id: number
  rows?: Record<string, unknown>[]
  error?: { message: string; code?: string }
}

export class SqliteSearchReader {
  private readonly worker: Worker
  private readonly waiting = new Map<number, { resolve(rows: Record<string, unknown>[]): void; reject(error: Error): void }>()
  private nextId = 0
  private failed: Error | null = null

  constructor(filename: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { filename, driver: require.resolve('better-sqlite3') } })
    this.worker.unref()
    this.worker.on('message', (reply: Reply) => {
      const waiter = this.waiting.get(reply.id)
      if (!waiter) return
      this.waiting.delete(reply.id)
      if (reply.error) waiter.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }))
      else waiter.resolve(reply.rows ?? [])
    })
    this.worker.on('error', (error) => this.fail(error))
    this.worker.on('exit', () => this.fail(new Error('The search reader stopped.')))
  }

  private fail(error: Error) {
    this.failed ??= error
    for (const waiter of this.waiting.values()) waiter.reject(error)
    this.waiting.clear()
  }

  /** Whether it can take statements (else the caller runs them itself). */
  get usable(): boolean {
    return this.failed === null
  }

  all(sql: string, values: unknown[]): Promise<Record<string, unknown>[]> {
    if (this.failed) return Promise.reject(this.failed)
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      this.worker.postMessage({ id, sql, values })
    })
  }

  async close(): Promise<void> {
    this.fail(new Error('The search reader was closed.'))
    await this.worker.terminate()
  }
}
