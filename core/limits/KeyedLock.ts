import { setImmediate as nextTurn } from 'node:timers/promises'

interface Item {
  work: () => Promise<unknown>
  resolve: (value: any) => void
  reject: (error: unknown) => void
}

/**
 * Runs work one at a time per key, in arrival order, in this process. A key's queue is a plain
 * array of items (queueing one costs a promise and no closure), and each next item starts on a
 * later turn of the event loop (setImmediate), so a long queue never runs as one chain of
 * microtasks: I/O (other clients' requests) is served between its items. A key is forgotten when
 * its queue is empty.
 */
export class KeyedLock {
  private readonly queues = new Map<string, Item[]>()

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
    await settle(first)
    while (queue.length) {
      await nextTurn()
      await settle(queue.shift()!)
    }
    this.queues.delete(key)
  }
}

async function settle(item: Item): Promise<void> {
  try {
    item.resolve(await item.work())
  } catch (error) {
    item.reject(error)
  }
}
