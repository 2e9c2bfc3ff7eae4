import type { ClusterEvent, ClusterEventKind } from './PgNotifier.js'

/** Events a transport keeps before sending; beyond this the oldest are dropped (clients re-read on reconnect). */
export const MAX_PENDING_EVENTS = 10_000
/** A job's later event replaces an earlier one of the same or a lower rank: a deletion says the most. */
const KIND_RANK: Record<ClusterEventKind, number> = { progress: 0, change: 1, deleted: 2 }

/**
 * Adds an event to those waiting to be sent, one per job (both transports, PgNotifier and
 * SqliteOutbox, collapse alike): the higher-ranked kind wins, and a job that became claimable
 * stays so unless it was deleted.
 */
export function collapseEvent(pending: Map<string, ClusterEvent>, event: ClusterEvent): void {
  const previous = pending.get(event.jobId)
  if (!previous || KIND_RANK[event.kind] >= KIND_RANK[previous.kind]) {
    const claimable = (event.claimable || previous?.claimable) && event.kind !== 'deleted'
    pending.set(event.jobId, claimable ? { ...event, claimable } : event)
  }
  if (pending.size > MAX_PENDING_EVENTS) pending.delete(pending.keys().next().value!)
}
