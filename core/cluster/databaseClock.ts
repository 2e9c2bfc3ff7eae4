import type { Clock, OffsetClock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { PostStore } from '../store/PostStore.js'

export interface DatabaseClockOptions {
  store: PostStore
  clock: OffsetClock
  logger: Logger
  /** The local clock the OffsetClock is built on (default: the OffsetClock's own). */
  local?: Clock
  /** How often to re-measure the offset (default 60 s). */
  intervalMs?: number
  /** Round trips per measurement; the fastest one is kept (default 3). */
  samples?: number
}

/**
 * Keeps an OffsetClock on the database's clock, so that leases and run times written by several
 * machines compare against one time. Measures at once, then every `intervalMs`; returns the stop
 * function.
 */
export async function followDatabaseClock(options: DatabaseClockOptions): Promise<() => void> {
  // Measured with the clock the offset is added to: otherwise a skewed local clock stays skewed.
  const local = options.local ?? options.clock.local
  const samples = Math.max(1, options.samples ?? 3)
  const calibrate = async () => {
    let best: { reference: number; sentAt: number; receivedAt: number } | undefined
    for (let i = 0; i < samples; i++) {
      const sentAt = local.now()
      const reference = await options.store.databaseNow()
      const receivedAt = local.now()
      if (!best || receivedAt - sentAt < best.receivedAt - best.sentAt) best = { reference, sentAt, receivedAt }
    }
    const before = options.clock.offset
    options.clock.calibrate(best!.reference, best!.sentAt, best!.receivedAt)
    if (Math.abs(options.clock.offset - before) > 1000) {
      options.logger.warn({ offsetMs: options.clock.offset }, 'This machine’s clock differs from the database’s by over a second')
    }
  }
  await calibrate()
  const timer = setInterval(() => {
    calibrate().catch((error) => options.logger.warn({ err: error }, 'Could not read the database clock'))
  }, options.intervalMs ?? 60_000)
  timer.unref()
  return () => clearInterval(timer)
}
