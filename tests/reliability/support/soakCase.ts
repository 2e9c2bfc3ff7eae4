import { expect } from 'vitest'
import { eventually, startJobpost } from '../../support/harness.js'
import { activeResources, runSoak, settledMemoryMb, type SoakOptions, type SoakReport } from './soak.js'

const PROCESS_EVENTS = ['exit', 'SIGINT', 'SIGTERM', 'uncaughtException', 'unhandledRejection', 'warning', 'beforeExit'] as const

/**
 * Runs a soak and asserts the promise: every job final exactly once, nothing left pending or
 * running, and open handles, process listeners and RSS back to where they were before.
 */
export async function soakAndCheck(options: SoakOptions & { rssSlackMb: number; heapSlackMb?: number }): Promise<SoakReport> {
  const warnings: string[] = []
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
  // Warm-up: the first instance in a process loads modules and registers process-wide hooks
  // once (pino's exit flush); a leak is what grows after that.
  const warm = await startJobpost({}, { listen: false, runWorker: true })
  await warm.listen()
  await warm.close()
  const baselineResources = activeResources()
  const baselineListeners = Object.fromEntries(PROCESS_EVENTS.map((event) => [event, process.listenerCount(event)]))
  const baseline = await settledMemoryMb()
  process.on('warning', onWarning)
  let report: SoakReport
  try {
    report = await runSoak(options)
  } finally {
    process.off('warning', onWarning)
  }
  options.log?.(JSON.stringify({ ...report, notExactlyOnce: report.notExactlyOnce.slice(0, 10) }))

  expect(report.notExactlyOnce, 'jobs not final exactly once').toEqual([])
  expect(report.succeededTwice, 'jobs whose processor succeeded twice').toEqual([])
  expect(report.statusMismatches, 'stored status differs from the final event').toEqual([])
  expect(report.loggedErrors, 'errors the instances logged').toEqual({})
  expect(report.completed + report.failed).toBe(options.jobs)
  expect(report.storedByStatus).toMatchObject({ pending: 0, running: 0, paused: 0 })
  expect(report.restartsDone).toBe(options.restarts)
  // The faults really happened.
  if (options.jobs >= 1000) {
    expect(report.failed).toBeGreaterThan(0)
    expect(report.retries).toBeGreaterThan(0)
  }
  // With many restarts some catch attempts mid-run (each has a ~80% chance): those are released.
  if (options.restarts >= 10) expect(report.interrupted).toBeGreaterThan(0)
  expect(report.listenerGrowth).toEqual(Object.fromEntries(Object.keys(report.listenerGrowth).map((event) => [event, 0])))
  expect(warnings.filter((w) => /MaxListeners|leak/i.test(w)), 'leak warnings').toEqual([])

  // Every instance closed: the same handles as before (timers, sockets, files...), and no more listeners.
  const leaked = () => Object.entries(activeResources()).filter(([kind, n]) => n > (baselineResources[kind] ?? 0))
  await eventually(() => leaked().length === 0, { timeoutMs: 5000, intervalMs: 50 }).catch(() => undefined)
  expect(leaked(), `before: ${JSON.stringify(baselineResources)}`).toEqual([])
  expect(Object.fromEntries(PROCESS_EVENTS.map((event) => [event, process.listenerCount(event)]))).toEqual(baselineListeners)
  const after = await settledMemoryMb()
  options.log?.(`RSS ${baseline.rss.toFixed(0)} → ${after.rss.toFixed(0)} MB, heap ${baseline.heap.toFixed(0)} → ${after.heap.toFixed(0)} MB`)
  // The heap after a full collection is the leak check; RSS only bounds it (freed memory is not
  // always given back to the system).
  expect(after.heap, 'V8 heap in use after the soak').toBeLessThan(baseline.heap + (options.heapSlackMb ?? 30))
  expect(after.rss, 'RSS after the soak').toBeLessThan(baseline.rss + options.rssSlackMb)
  return report
}
