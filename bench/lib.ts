import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** BENCH_SCALE shrinks (or grows) every count: 1 is the full run, 0.05 a quick one. */
export const SCALE = (() => {
  const raw = Number(process.env.BENCH_SCALE ?? 1)
  return Number.isFinite(raw) && raw > 0 ? raw : 1
})()

export const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * SCALE))

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
