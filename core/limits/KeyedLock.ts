import { setImmediate as nextTurn } from 'node:timers/promises'

interface Item {
  work: () => Promise<unknown>
  resolve: (value: any) => void
  reject: (error: unknown) => void
}

/**
 * Runs work one at a time per key, in arrival order, in this process. A key's queue is a plain
 * array of items (queueing one costs a promise and no closure). Work never runs twice for one key
 * within one turn of the event loop: a queued item, or a new one arriving in the same turn as the
 * key's last (a plugin's `for` loop of awaited creates, which may resolve through microtasks
 * alone), starts on the next turn (setImmediate). So I/O, other clients' requests, is served
 * between any owner's items. A key is forgotten when its queue is empty.
 */
export class KeyedLock {
  private readonly queues = new Map<string, Item[]>()
  /** Keys that started work in the current turn of the event loop. */
  private readonly startedThisTurn = new Set<string>()
  private turnEndScheduled = false

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const item: Item = { work, resolve, reject }
      const queue = this.queues.get(key)
      if (queue) {
        queue.push(item)
        return
      }
      const fresh: Item[] = []
      this.queues.set(key, fresh)
      void this.drain(key, fresh, item)
    })
  }

  /** Keys with work running or waiting. */
  get size(): number {
    return this.queues.size
  }

  private async drain(key: string, queue: Item[], first: Item): Promise<void> {
    if (this.startedThisTurn.has(key)) await nextTurn()
    await this.start(key, first)
    while (queue.length) {
      await nextTurn()
      await this.start(key, queue.shift()!)
    }
    this.queues.delete(key)
  }

  private async start(key: string, item: Item): Promise<void> {
    this.startedThisTurn.add(key)
    if (!this.turnEndScheduled) {
      this.turnEndScheduled = true
      setImmediate(() => {
        this.turnEndScheduled = false
        this.startedThisTurn.clear()
      })
    }
    try {
      item.resolve(await item.work())
    } catch (error) {
      item.reject(error)
    }
  }
}
