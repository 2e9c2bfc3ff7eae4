import { ValidationError } from '../errors.js'
import type { JobSort, JobState } from '../store/jobs/JobStore.js'
import { sortValueOf } from '../store/jobs/jobSql.js'

/**
 * Keyset paging of job lists: a cursor names the last row of a page by its sort value and post
 * id, so the next page starts there with an index seek instead of skipping `offset` rows.
 * Opaque to clients (base64url JSON); bound to the sort it was made for.
 */
export function encodeCursor(state: JobState, sort: JobSort): string {
  return Buffer.from(JSON.stringify({ s: sort, v: sortValueOf(state, sort), id: state.postId })).toString('base64url')
}

export function decodeCursor(cursor: string, sort: JobSort): { value: number; postId: number } {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new ValidationError('cursor is not one this server made.')
  }
  const { s, v, id } = (parsed ?? {}) as { s?: unknown; v?: unknown; id?: unknown }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || typeof id !== 'number' || !Number.isSafeInteger(id)) {
    throw new ValidationError('cursor is not one this server made.')
  }
  if (s !== sort) throw new ValidationError('cursor was made for another sort; start again without it.')
  return { value: v, postId: id }
}
