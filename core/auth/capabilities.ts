import type { Capability, PublicUser, Role } from '../contract.js'
import { ForbiddenError } from '../errors.js'

/** Roles and their capabilities, per the contract (`../shared/API.md`). */
export const ROLE_CAPABILITIES: Record<Role, readonly Capability[]> = {
  administrator: ['manage_jobs', 'read_jobs', 'create_jobs', 'delete_jobs'],
  editor: ['read_jobs', 'create_jobs'],
  subscriber: ['create_jobs'],
}

export const ROLE_NAMES: Record<Role, string> = {
  administrator: 'Administrator',
  editor: 'Editor',
  subscriber: 'Subscriber',
}

/** `manage_jobs` implies every other capability. */
export function can(user: PublicUser, capability: Capability): boolean {
  return user.capabilities.includes('manage_jobs') || user.capabilities.includes(capability)
}

/** Whether the user may see every job, not only their own. */
export function canSeeAllJobs(user: PublicUser): boolean {
  return can(user, 'read_jobs')
}

/** `source` (posing as a plugin) and a priority above 0 (jumping the queue) need manage_jobs. */
export function assertMaySetPrivilegedFields(user: PublicUser, fields: { source?: string | null; priority?: number }): void {
  if (can(user, 'manage_jobs')) return
  if (fields.source != null) throw new ForbiddenError('Setting source needs the manage_jobs capability.')
  if ((fields.priority ?? 0) > 0) throw new ForbiddenError('A priority above 0 needs the manage_jobs capability.')
}
