import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT_DIR } from '../../../core/config.js'

const here = path.dirname(fileURLToPath(import.meta.url))
export const WORKER_FIXTURE = path.join(here, '..', 'fixtures', 'worker.ts')

export interface Child {
  child: ChildProcess
  output(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Waits until the output matches, or the process exits (rejects). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
}

/** Runs a TypeScript file with tsx in a child process (what `npx tsx file.ts` does, without npx's start-up). */
export function spawnTs(file: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: ROOT_DIR,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const listeners = new Set<() => void>()
  const onData = (chunk: Buffer) => {
    output += chunk
    for (const listener of listeners) listener()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return {
    child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output)
          if (match) {
            cleanup()
            resolve(match)
          }
        }
        const timer = setTimeout(() => (cleanup(), reject(new Error(`Timed out waiting for ${pattern}:\n${output}`))), timeoutMs)
        const cleanup = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        listeners.add(check)
        void exited.then(({ code, signal }) => {
          if (!listeners.has(check)) return
          cleanup()
          reject(new Error(`Process exited (${code ?? signal}) before ${pattern}:\n${output}`))
        })
        check()
      })
    },
  }
}

/** A fixture worker on `databaseUrl`, resolved once it is claiming. */
export async function spawnWorker(options: {
  databaseUrl: string
  eventLog: string
  leaseMs?: number
  graceMs?: number
  env?: Record<string, string>
}): Promise<Child> {
  const worker = spawnTs(WORKER_FIXTURE, {
    ...options.env,
    DATABASE_URL: options.databaseUrl,
    EVENT_LOG: options.eventLog,
    LEASE_MS: String(options.leaseMs ?? 1000),
    GRACE_MS: String(options.graceMs ?? 10_000),
  })
  await worker.waitFor(/READY \d+/)
  return worker
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(label: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `jobpost-${label}-`))
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

export interface EventLine {
  event: string
  jobId: string
  n: number
  pid: number
  at: number
}

/** Parses the fixture's event log: `<event> <jobId> <attempt|attempts> <pid> <ms>` lines. */
export function readEvents(file: string): EventLine[] {
  if (!fs.existsSync(file)) return []
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((parts) => parts.length === 5)
    .map(([event, jobId, n, pid, at]) => ({ event: event!, jobId: jobId!, n: Number(n), pid: Number(pid), at: Number(at) }))
}
