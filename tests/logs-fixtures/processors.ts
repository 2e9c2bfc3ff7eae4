import type { PluginHooks } from '../../core/hooks/pluginHooks.js'
import type { LogLevel } from '../../core/contract.js'

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error']

/**
 * Processors of the log tests:
 * - `log-lines` logs `data.count` lines `line <i>` (fields `{ i }`, levels cycling), `data.gapMs`
 *   apart (0: all at once), then completes.
 * - `fail-once` logs a line and fails its first attempt (retried at once), completes the second.
 * - `hang-first` logs a line; its first attempt never ends (the test kills its process), later
 *   attempts complete.
 */
export function registerLogProcessors(hooks: PluginHooks): void {
  hooks.registerJobProcessor('log-lines', async (job, { log }) => {
    const { count = 10, gapMs = 0 } = (job.data ?? {}) as { count?: number; gapMs?: number }
    for (let i = 1; i <= count; i++) {
      log(`line ${i}`, { i }, LEVELS[i % LEVELS.length])
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
    }
    return { logged: count }
  })
  hooks.registerJobProcessor(
    'fail-once',
    async (_job, { log, attempt }) => {
      log(`attempt ${attempt} begins`)
      if (attempt === 1) throw Object.assign(new Error('first attempt fails'), { retryDelay: 0 })
      return { ok: true }
    },
    { maxAttempts: 3 },
  )
  hooks.registerJobProcessor(
    'hang-first',
    async (_job, { log, attempt }) => {
      log(`attempt ${attempt} runs`, { pid: process.pid })
      if (attempt === 1) await new Promise(() => undefined)
      return { ok: true }
    },
    { maxAttempts: 3, backoff: { type: 'fixed', delay: 0 } },
  )
}

/** In-process only: `slow` waits for its abort (timeouts, cancels). */
export function registerSlowProcessor(hooks: PluginHooks): void {
  hooks.registerJobProcessor(
    'slow',
    async (_job, { log, signal }) => {
      log('waiting')
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    },
    { maxAttempts: 1 },
  )
}
