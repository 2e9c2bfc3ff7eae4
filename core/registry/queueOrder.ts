/**
 * Queue order: the one definition of the order in which the runtime claims the due pending jobs
 * of a type, used by the claim statements of both job stores, by the admin's Queue view
 * (GET /api/v1/jobs/queue lists in the same ORDER BY) and by the admin UI when it places a job
 * that arrives over the WebSocket. Higher priority first, then the earlier `runAt`, then the
 * older job (its post id). The partial index `job_state_claim_idx` is ordered the same way.
 *
 * No runtime dependencies: the admin UI imports this file as-is.
 */

/** `ORDER BY` terms of queue order over `job_state` (columns optionally qualified by `alias`). */
export function queueOrderSql(alias?: string): string {
  const p = alias ? `${alias}.` : ''
  return `${p}priority DESC, ${p}run_at, ${p}post_id`
}

/** What queue order compares: a job's priority, runAt (ms or ISO text) and id (its post id). */
export interface QueueOrderKey {
  priority: number
  runAt: number | string
  id: number
}

const ms = (runAt: number | string): number => (typeof runAt === 'number' ? runAt : Date.parse(runAt))

/** Queue order as a comparator: negative when `a` is claimed before `b`. */
export function compareQueueOrder(a: QueueOrderKey, b: QueueOrderKey): number {
  return b.priority - a.priority || ms(a.runAt) - ms(b.runAt) || a.id - b.id
}
