import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createDatabase, type Database } from '../core/db/createDatabase.js'
import { CHECKPOINT_SAFETY_PAGES } from '../core/db/sqliteCheckpointer.js'

/**
 * WAL checkpoints of a SQLite file run on a worker thread (core/db/sqliteCheckpointer.ts), not in
 * the COMMIT of whichever write passes 1,000 pages on the event loop: the writes' WAL reaches the
 * database file without the store's connection checkpointing, and closing checkpoints what is left.
 */
describe('SQLite WAL checkpoints off the event loop', () => {
  let dir = ''
  let db: Database | undefined
  afterEach(async () => {
    await db?.close()
    db = undefined
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  const pause = async (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  it('the store’s connection leaves checkpoints to the worker, which copies the WAL into the file', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-checkpoint-'))
    const file = path.join(dir, 'jobs.sqlite')
    db = await createDatabase({ dialect: 'sqlite', filename: file })
    const [setting] = (await db.knex.raw('PRAGMA wal_autocheckpoint')) as { wal_autocheckpoint: number }[]
    expect(setting!.wal_autocheckpoint).toBe(CHECKPOINT_SAFETY_PAGES)
    await db.knex.raw('CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT)')
    // ~3,000 pages of WAL, in transactions of ~100 pages (an autocheckpoint would run in one).
    for (let i = 0; i < 30; i++) {
      await db.knex.transaction(async (trx) => {
        for (let k = 0; k < 100; k++) await trx('blobs').insert({ body: 'x'.repeat(4000) })
      })
    }
    const before = fs.statSync(file).size
    // The worker checkpoints every 500 ms: the pages reach the database file.
    let after = before
    for (let tries = 0; tries < 40 && after < before + 8_000_000; tries++) {
      await pause(100)
      after = fs.statSync(file).size
    }
    expect(after).toBeGreaterThan(before + 8_000_000)
    const [{ n }] = (await db.knex.raw('SELECT COUNT(*) AS n FROM blobs')) as { n: number }[]
    expect(n).toBe(3000)
  })

  it('closing runs a last checkpoint and ends the worker', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-checkpoint-'))
    const file = path.join(dir, 'jobs.sqlite')
    db = await createDatabase({ dialect: 'sqlite', filename: file })
    await db.knex.raw('CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT)')
    await db.knex('blobs').insert({ body: 'y'.repeat(100_000) })
    await db.close()
    db = undefined
    expect(fs.statSync(file).size).toBeGreaterThan(100_000)
  })
})
