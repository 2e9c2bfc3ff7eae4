/**
 * The one clock. Everything that reads time takes a Clock, so tests can drive time and the
 * PostgreSQL mode can follow the database's clock (see `DatabaseClock`).
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

export function isoNow(clock: Clock): string {
  return new Date(clock.now()).toISOString()
}

/** A clock for tests: time moves only when told to. */
export class ManualClock implements Clock {
  constructor(private current = Date.parse('2026-01-01T00:00:00.000Z')) {}
  now(): number {
    return this.current
  }
  advance(ms: number): void {
    this.current += ms
  }
  set(ms: number): void {
    this.current = ms
  }
}

/**
 * Follows a reference clock (the database's) by measuring its offset from the local clock,
 * so that lease and runAt comparisons made by several machines agree.
 */
export class OffsetClock implements Clock {
  private offsetMs = 0
  /** `local` is this machine's clock; calibrations must be measured with it. */
  constructor(readonly local: Clock = systemClock) {}
  now(): number {
    return this.local.now() + this.offsetMs
  }
  /** `referenceMs` was read from the reference clock between `sentAt` and `receivedAt` (local ms). */
  calibrate(referenceMs: number, sentAt: number, receivedAt: number): void {
    this.offsetMs = Math.round(referenceMs - (sentAt + receivedAt) / 2)
  }
  get offset(): number {
    return this.offsetMs
  }
}
