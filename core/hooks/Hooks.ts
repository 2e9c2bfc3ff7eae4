import type { JobEventMap, JobEventName } from '../contract.js'
import { coerceError } from '../errors.js'
import type { Logger } from '../logger.js'

type Callback = (...args: any[]) => unknown
interface Registration {
  callback: Callback
  priority: number
  owner: string
  order: number
}

type EventListener<E extends JobEventName> = (payload: JobEventMap[E]) => unknown

const DEFAULT_PRIORITY = 10

/**
 * WordPress-style actions and filters plus a typed event bus. A callback's error is caught,
 * logged with the name of the plugin that registered it, and never reaches the caller.
 */
export class HookRegistry {
  private readonly actions = new Map<string, Registration[]>()
  private readonly filters = new Map<string, Registration[]>()
  private readonly listeners = new Map<JobEventName, Set<{ listener: EventListener<any>; owner: string }>>()
  private sequence = 0

  constructor(private readonly logger: Logger) {}

  addAction(name: string, callback: Callback, options: { priority?: number; owner?: string } = {}): void {
    this.add(this.actions, name, callback, options)
  }

  removeAction(name: string, callback: Callback): boolean {
    return this.remove(this.actions, name, callback)
  }

  /** Awaits every callback in priority order (lower first, then registration order). */
  async doAction(name: string, ...args: unknown[]): Promise<void> {
    for (const registration of this.actions.get(name) ?? []) {
      try {
        await registration.callback(...args)
      } catch (thrown) {
        this.report(`action ${name}`, registration.owner, thrown)
      }
    }
  }

  addFilter(name: string, callback: Callback, options: { priority?: number; owner?: string } = {}): void {
    this.add(this.filters, name, callback, options)
  }

  removeFilter(name: string, callback: Callback): boolean {
    return this.remove(this.filters, name, callback)
  }

  /** Threads `value` through every filter; a filter that throws is skipped (value unchanged). */
  async applyFilters<T>(name: string, value: T, ...args: unknown[]): Promise<T> {
    let current = value
    for (const registration of this.filters.get(name) ?? []) {
      try {
        current = (await registration.callback(current, ...args)) as T
      } catch (thrown) {
        this.report(`filter ${name}`, registration.owner, thrown)
      }
    }
    return current
  }

  hasAction(name: string): boolean {
    return (this.actions.get(name)?.length ?? 0) > 0
  }

  /** Subscribes to a typed job event; returns the function that unsubscribes. */
  on<E extends JobEventName>(event: E, listener: EventListener<E>, owner = 'core'): () => void {
    let set = this.listeners.get(event)
    if (!set) this.listeners.set(event, (set = new Set()))
    const entry = { listener, owner }
    set.add(entry)
    return () => set!.delete(entry)
  }

  listenerCount(event: JobEventName): number {
    return this.listeners.get(event)?.size ?? 0
  }

  /**
   * Emits a typed event to its listeners, synchronously, and to actions of the same name (not
   * awaited). Never throws: a listener's error is reported and the others still run.
   */
  safeEmit<E extends JobEventName>(event: E, payload: JobEventMap[E]): void {
    for (const { listener, owner } of this.listeners.get(event) ?? []) {
      try {
        const returned = listener(payload)
        if (returned instanceof Promise) returned.catch((thrown) => this.report(`event ${event}`, owner, thrown))
      } catch (thrown) {
        this.report(`event ${event}`, owner, thrown)
      }
    }
    if (this.hasAction(event)) void this.doAction(event, payload)
  }

  private add(
    table: Map<string, Registration[]>,
    name: string,
    callback: Callback,
    options: { priority?: number; owner?: string },
  ) {
    if (typeof callback !== 'function') throw new TypeError(`A callback for ${name} must be a function.`)
    const list = table.get(name) ?? []
    list.push({ callback, priority: options.priority ?? DEFAULT_PRIORITY, owner: options.owner ?? 'core', order: this.sequence++ })
    list.sort((a, b) => a.priority - b.priority || a.order - b.order)
    table.set(name, list)
  }

  private remove(table: Map<string, Registration[]>, name: string, callback: Callback): boolean {
    const list = table.get(name)
    if (!list) return false
    const index = list.findIndex((registration) => registration.callback === callback)
    if (index === -1) return false
    list.splice(index, 1)
    return true
  }

  private report(where: string, owner: string, thrown: unknown) {
    const error = coerceError(thrown)
    this.logger.error({ err: error, plugin: owner, hook: where }, `Plugin "${owner}" failed in ${where}: ${error.message}`)
  }
}
