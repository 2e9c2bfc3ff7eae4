/**
 * Collects keyed values and hands them over at most once per `intervalMs` (default 100 ms), the
 * latest value per key winning. A burst of thousands of messages costs one Map write each, and the
 * page renders once per flush instead of once per message.
 */
export function createCoalescer<T>(options: {
  flush: (batch: Map<string, T>) => void
  intervalMs?: number
  /** Merges a new value with the one already waiting (default: the new one wins). */
  merge?: (waiting: T, incoming: T) => T
}) {
  const intervalMs = options.intervalMs ?? 100
  let waiting = new Map<string, T>()
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false

  function run() {
    timer = undefined
    if (stopped || waiting.size === 0) return
    const batch = waiting
    waiting = new Map()
    options.flush(batch)
  }

  return {
    push(key: string, value: T) {
      if (stopped) return
      const current = waiting.get(key)
      waiting.set(key, current !== undefined && options.merge ? options.merge(current, value) : value)
      timer ??= setTimeout(run, intervalMs)
    },
    /** Hands over what is waiting now (e.g. before a full reload replaces the state). */
    flushNow() {
      clearTimeout(timer)
      run()
    },
    get size() {
      return waiting.size
    },
    stop() {
      stopped = true
      clearTimeout(timer)
      timer = undefined
      waiting.clear()
    },
  }
}
