import { AsyncLocalStorage } from 'node:async_hooks'
import { coerceError } from '../errors.js'
import type { Logger } from '../logger.js'

/**
 * Plugin code as a fault boundary. Everything Jobpost calls in a plugin (processors, hook
 * callbacks, `onPause`) runs inside `inPlugin(name, ...)`; timers and promises it starts keep
 * that scope (AsyncLocalStorage), so an unhandled rejection or uncaught exception they raise
 * later is logged with the plugin's name instead of ending the process.
 *
 * The process-level handlers are installed once, while at least one Jobpost holds them
 * (`holdFaultHandlers`). A fault outside any plugin keeps Node's meaning: an uncaught exception
 * is logged and ends the process (exit code 1, unless another handler, e.g. a test runner's, is
 * installed); an unhandled rejection is logged.
 */

const scope = new AsyncLocalStorage<{ plugin: string }>()

/** Runs `work` as code of `plugin` (its faults are reported with that name). */
export function inPlugin<T>(plugin: string, work: () => T): T {
  return scope.run({ plugin }, work)
}

/** The plugin whose code is running now, if any. */
export function currentPlugin(): string | undefined {
  return scope.getStore()?.plugin
}

const loggers = new Set<Logger>()
let installed = false
/** Faults contained so far in this process (tests and metrics read it). */
export const containedFaults = { count: 0 }

function onRejection(reason: unknown) {
  report('unhandledRejection', reason, false)
}

function onException(error: unknown) {
  report('uncaughtException', error, true)
}

function report(kind: 'unhandledRejection' | 'uncaughtException', thrown: unknown, fatalOutsidePlugin: boolean) {
  const plugin = currentPlugin()
  const error = coerceError(thrown)
  const logger = [...loggers].at(-1)
  if (plugin) {
    containedFaults.count++
    logger?.error({ err: error, plugin, kind }, `Plugin "${plugin}" raised an ${kind === 'uncaughtException' ? 'uncaught exception' : 'unhandled rejection'} (contained): ${error.message}`)
    return
  }
  logger?.error({ err: error, kind }, `${kind}: ${error.message}`)
  if (fatalOutsidePlugin && process.listenerCount('uncaughtException') <= 1) {
    // Not plugin code: the process state is unknown, so end as Node would have.
    process.exitCode = 1
    setImmediate(() => process.exit(1))
  }
}

/**
 * Installs the process-level handlers (once) and logs through `logger` while held; the returned
 * function releases them (the handlers go when the last holder releases).
 */
export function holdFaultHandlers(logger: Logger): () => void {
  loggers.add(logger)
  if (!installed) {
    installed = true
    process.on('unhandledRejection', onRejection)
    process.on('uncaughtException', onException)
  }
  let released = false
  return () => {
    if (released) return
    released = true
    loggers.delete(logger)
    if (loggers.size === 0 && installed) {
      installed = false
      process.off('unhandledRejection', onRejection)
      process.off('uncaughtException', onException)
    }
  }
}
