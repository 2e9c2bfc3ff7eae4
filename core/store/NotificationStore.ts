import type { Database } from '../db/createDatabase.js'

/** Dismissals of notification cards, per user (a cold path: knex). */
export class NotificationStore {
  constructor(private readonly db: Database) {}

  async dismiss(userId: number, postIds: readonly number[], now: number): Promise<void> {
    if (postIds.length === 0) return
    await this.db
      .knex('notification_dismissals')
      .insert(postIds.map((post_id) => ({ user_id: userId, post_id, dismissed_at: now })))
      .onConflict(['user_id', 'post_id'])
      .ignore()
  }

  /**
   * Dismisses, in one statement, every finished job of the feed that notifies (optionally only a
   * creator's), finished after `since`: a walk of the (status, completed_at) index.
   */
  async dismissFinished(options: { userId: number; createdBy?: number; since: number; statuses: readonly string[]; now: number }): Promise<number> {
    const k = this.db.knex
    const rows = k('job_state')
      .select(k.raw('?', [options.userId]), 'post_id', k.raw('?', [options.now]))
      .whereIn('status', [...options.statuses])
      .where('completed_at', '>', options.since)
      .where('show_notification', 1)
    if (options.createdBy !== undefined) rows.where('created_by', options.createdBy)
    const result = await k.raw(
      `INSERT INTO notification_dismissals (user_id, post_id, dismissed_at) ${rows.toQuery()} ON CONFLICT (user_id, post_id) DO NOTHING`,
    )
    return Array.isArray(result) ? 0 : Number(result?.rowCount ?? 0)
  }
}
