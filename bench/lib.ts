import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** BENCH_QUICK=1: small counts, for a run of a few minutes (the figures are then only indicative). */
export const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true'

/** BENCH_SCALE shrinks (or grows) the queue workloads: 1 is the full run (0.2 in quick mode). */
export const SCALE = (() => {
  const raw = Number(process.env.BENCH_SCALE ?? (QUICK ? 0.2 : 1))
  return Number.isFinite(raw) && raw > 0 ? raw : 1
})()

export const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * SCALE))

/** The shared workload of the queue rows. */
export interface Workload {
  /** Sequential single adds (each awaited before the next). */
  singles: number
  /** Jobs added in bulk calls of 1,000. */
  bulk: number
  /** No-op jobs queued first, then processed at concurrency 10. */
  process: number
  /** Jobs enqueued one by one at `perSecond` to measure enqueue→start. */
  latencyJobs: number
  perSecond: number
}

/** One system's row: what each queue reports for the shared workload. */
export interface SystemFigures {
  bulkPerSec: number | null
  singlePerSec: number | null
  processedPerSec: number
  latencyP50: number
  latencyP99: number
  /** Jobs that ran more than once (multi-instance rows). */
  doubleRuns?: number
  note?: string
}

/** Wall-clock milliseconds with sub-ms resolution, comparable between processes on one machine. */
export const epochNow = () => performance.timeOrigin + performance.now()

/** Waits until `check()` holds (polling every 2 ms) and returns how long that took. */
export async function timeUntil(check: () => boolean, what: string, timeoutMs = 900_000): Promise<number> {
  const start = performance.now()
  await waitFor(check, timeoutMs, what)
  return performance.now() - start
}

/**
 * Enqueues `count` jobs at a steady `perSecond`, open loop (a slow enqueue does not delay the
 * next ones, so a queue that falls behind shows it), passing each its send time; waits until
 * `latencies` (filled by the processor: start time − t0) has them all.
 */
export async function pacedLatency(options: {
  count: number
  perSecond: number
  enqueue(t0: number): Promise<unknown>
  latencies: number[]
  now?: () => number
  timeoutMs?: number
}): Promise<{ p50: number; p99: number }> {
  const now = options.now ?? (() => performance.now())
  const before = options.latencies.length
  const sends: Promise<unknown>[] = []
  const start = performance.now()
  let sent = 0
  while (sent < options.count) {
    const elapsed = performance.now() - start
    const due = Math.min(options.count, Math.floor((elapsed * options.perSecond) / 1000) + 1)
    while (sent < due) {
      sends.push(options.enqueue(now()))
      sent++
    }
    await sleep(1)
  }
  await Promise.all(sends)
  await waitFor(() => options.latencies.length - before >= options.count, options.timeoutMs ?? 120_000, 'latency jobs')
  const measured = options.latencies.slice(before)
  return { p50: percentile(measured, 50), p99: percentile(measured, 99) }
}

export interface Figure {
  /** Short id, e.g. `create.single`. */
  id: string
  label: string
  value: number
  unit: string
  /** The same measurement for the baseline (raw SQLite, BullMQ, pg-boss...), when there is one. */
  baselines?: Record<string, number | null>
  /** Human-readable target and whether it was met (undefined: no target). */
  target?: string
  met?: boolean
  note?: string
}

const figures: Figure[] = []

/** Records a figure and prints it as one JSON line. */
export function report(figure: Figure): Figure {
  figures.push(figure)
  process.stdout.write(`${JSON.stringify({ ...figure, value: round(figure.value) })}\n`)
  return figure
}

export function allFigures(): Figure[] {
  return figures
}

export function round(value: number): number {
  if (!Number.isFinite(value)) return value
  const abs = Math.abs(value)
  return abs >= 100 ? Math.round(value) : abs >= 1 ? Math.round(value * 100) / 100 : Math.round(value * 1000) / 1000
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export function median(values: number[]): number {
  return percentile(values, 50)
}

/** Runs `work` and returns its duration in ms. */
export async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now()
  await work()
  return performance.now() - start
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await sleep(2)
  }
}

export function tempDir(label: string): { dir: string; file(name: string): string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `jobpost-bench-${label}-`))
  return {
    dir,
    file: (name) => path.join(dir, name),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  }
}

export function rssMb(): number {
  return process.memoryUsage().rss / (1024 * 1024)
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}

/** The closing table: one row per figure, with its baselines and ratios. */
export function printTable(): void {
  const rows = figures.map((figure) => {
    const baselines = Object.entries(figure.baselines ?? {})
      .map(([name, value]) => (value == null ? `${name}: n/a` : `${name}: ${round(value)}`))
      .join('; ')
    return [
      figure.label,
      `${round(figure.value)} ${figure.unit}`,
      baselines || '-',
      figure.target ?? '-',
      figure.met === undefined ? '-' : figure.met ? 'met' : 'MISSED',
    ]
  })
  const header = ['figure', 'Jobpost', 'baselines (same run)', 'target', '']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`
  process.stdout.write(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`)
  for (const row of rows) process.stdout.write(`${line(row)}\n`)
}

const systems: { name: string; figures: SystemFigures }[] = []

/** Records one system's queue row and prints it as one JSON line. */
export function systemRow(name: string, figures: SystemFigures): void {
  systems.push({ name, figures })
  const rounded = Object.fromEntries(Object.entries(figures).map(([key, value]) => [key, typeof value === 'number' ? round(value) : value]))
  process.stdout.write(`${JSON.stringify({ id: 'system', name, ...rounded })}\n`)
}

/** The queue table: one row per system, as in issue 11. */
export function printSystems(): void {
  if (systems.length === 0) return
  const num = (value: number | null | undefined) => (value == null || Number.isNaN(value) ? '–' : Math.round(value).toLocaleString('en-US'))
  const ms = (value: number) => (Number.isNaN(value) ? '–' : value >= 100 ? String(Math.round(value)) : value.toFixed(1))
  const header = ['system', 'bulk /s', 'single /s', 'processed /s (conc. 10)', 'enqueue→start p50 / p99']
  const rows = systems.map(({ name, figures }) => [
    name,
    num(figures.bulkPerSec),
    num(figures.singlePerSec),
    num(figures.processedPerSec) + (figures.doubleRuns ? ` (${figures.doubleRuns} double runs)` : ''),
    Number.isNaN(figures.latencyP50) ? '–' : `${ms(figures.latencyP50)} / ${ms(figures.latencyP99)} ms`,
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`
  process.stdout.write(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`)
  for (const row of rows) process.stdout.write(`${line(row)}\n`)
}
