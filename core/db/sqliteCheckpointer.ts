import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/**
 * WAL checkpoints of a SQLite file, on a connection of their own in a worker thread.
 *
 * SQLite checkpoints automatically in the connection whose COMMIT takes the WAL past 1,000 pages:
 * it copies them into the database file and fsyncs it, inside that COMMIT. On the store's
 * connection that was the event loop: measured 300 ms (a 1 GB database, this machine's disk), up
 * to 2 s under load, in the middle of a create or a search's page. So the store's connection
 * checkpoints only past CHECKPOINT_SAFETY_PAGES (a safety net should this worker stop), and this
 * worker runs `PRAGMA wal_checkpoint(PASSIVE)` every INTERVAL_MS: PASSIVE never waits for a
 * reader or blocks a writer, it copies what it can; the next one goes on from there.
 */

/** Pages of WAL after which the store's own connection checkpoints anyway (~400 MB). */
export const CHECKPOINT_SAFETY_PAGES = 100_000
const INTERVAL_MS = 500

const require = createRequire(import.meta.url)

/** Runs in the worker (CommonJS, eval'd). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
let db = null
function checkpoint() {
  try {
    if (!db) {
      db = new Database(workerData.filename, { fileMustExist: true })
      db.pragma('busy_timeout = 0')
    }
    db.pragma('wal_checkpoint(PASSIVE)')
  } catch {
    // The file is gone or busy: the next tick tries again (the store reports a missing file).
    try { db && db.close() } catch {}
    db = null
  }
}
const timer = setInterval(checkpoint, workerData.intervalMs)
parentPort.on('message', (message) => {
  if (message !== 'stop') return
  clearInterval(timer)
  checkpoint()
  try { db && db.close() } catch {}
  parentPort.close()
})
`

export class SqliteCheckpointer {
  private readonly worker: Worker
  private stopped: Promise<void> | null = null

  constructor(filename: string, intervalMs = INTERVAL_MS) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { filename, intervalMs, driver: require.resolve('better-sqlite3') } })
    this.worker.unref()
    // A failed worker leaves the safety net (the store's connection checkpoints past it).
    this.worker.on('error', () => undefined)
  }

  /** A last checkpoint, then the worker ends. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const timeout = setTimeout(() => void this.worker.terminate().then(() => resolve()), 5000)
      timeout.unref()
      this.worker.once('exit', () => {
        clearTimeout(timeout)
        resolve()
      })
      this.worker.postMessage('stop')
    })
    return this.stopped
  }
}
