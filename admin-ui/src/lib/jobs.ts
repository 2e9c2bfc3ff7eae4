import type { Job, JobStatus } from '../contract'

/** Newest first: by creation time, then by id (ids grow). */
export function newestFirst(a: Job, b: Job): number {
  // ISO-8601 UTC strings compare as text (and much faster than localeCompare, for big stacks).
  return a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : b.id - a.id
}

/** Whether `incoming` is at least as recent as `current` (ISO-8601 UTC strings compare as text). */
export function isNewer(incoming: Job, current: Job): boolean {
  return incoming.updatedAt >= current.updatedAt
}

export const STATUS_LABELS: Record<JobStatus, string> = {
  pending: 'Pending',
  running: 'Running',
  paused: 'Paused',
  completed: 'Completed',
  completed_with_errors: 'Completed with errors',
  failed: 'Failed',
  cancelled: 'Cancelled',
}

/** The icon of jobs that bring none (a neutral clock). */
const DEFAULT_ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="#475569" stroke-width="2"><circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/></svg>'

/**
 * A job's icon as a `data:image/svg+xml;base64,` URI for an <img>. An SVG shown through <img> runs no
 * script and loads nothing, so even an icon that escaped the server's sanitiser cannot act; the SVG
 * text is never put into the DOM as markup.
 */
export function iconDataUri(svg: string | null | undefined): string {
  const source = svg?.trim() ? svg : DEFAULT_ICON
  const bytes = new TextEncoder().encode(source)
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return `data:image/svg+xml;base64,${btoa(binary)}`
}

export function formatTime(iso: string | null): string {
  if (!iso) return '—'
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString()
}

export function formatDuration(fromIso: string | null, toIso: string | null): string {
  if (!fromIso || !toIso) return '—'
  const ms = new Date(toIso).getTime() - new Date(fromIso).getTime()
  if (!Number.isFinite(ms) || ms < 0) return '—'
  if (ms < 1000) return `${ms} ms`
  const seconds = ms / 1000
  if (seconds < 60) return `${seconds.toFixed(1)} s`
  const minutes = Math.floor(seconds / 60)
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`
}

/** Pretty JSON for <pre> (shown as text, never as markup). */
export function formatJson(value: unknown): string {
  if (value === null || value === undefined) return '—'
  try {
    return JSON.stringify(value, null, 2)
  } catch {
    return String(value)
  }
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
]

/** "3 min ago", "in 58 min": a time relative to `now` (ms), in the page's language, short. */
export function relativeTime(iso: string | null, now: number): string {
  if (!iso) return '—'
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return iso
  const diff = at - now
  const abs = Math.abs(diff)
  if (abs < 10_000) return 'just now'
  const [unit, ms] = UNITS.find(([, size]) => abs >= size) ?? UNITS[UNITS.length - 1]!
  const value = Math.round(diff / ms)
  return new Intl.RelativeTimeFormat('en', { numeric: 'always', style: 'short' }).format(value, unit)
}

/** A pending job whose `runAt` is still ahead (delayed, or waiting for a retry). */
export function isDelayed(job: Job, now: number): boolean {
  return job.status === 'pending' && Date.parse(job.runAt) > now + 1000
}

/** "runs in 58 min" for a delayed job. */
export function runsIn(job: Job, now: number): string {
  return `runs ${relativeTime(job.runAt, now)}`
}

/** `startedAt` → "Started at": a heading from a field name. */
export function humanizeKey(key: string): string {
  const words = key
    .replace(/[_-]+/g, ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .trim()
    .toLowerCase()
  return words ? words[0]!.toUpperCase() + words.slice(1) : key
}

/**
 * Which actions make sense in a status (the server still decides, with 409 for an illegal one).
 * With the job, pause and retry are left out when the server says they would not happen
 * (`pausable` / `retryable` false: a tracked job without onPause, or that no processor runs).
 */
export function availableActions(status: JobStatus, job?: { pausable?: boolean; retryable?: boolean }): ('cancel' | 'pause' | 'resume' | 'retry' | 'delete')[] {
  const actions = actionsInStatus(status)
  return actions.filter((action) => !(action === 'pause' && job?.pausable === false) && !(action === 'retry' && job?.retryable === false))
}

function actionsInStatus(status: JobStatus): ('cancel' | 'pause' | 'resume' | 'retry' | 'delete')[] {
  switch (status) {
    case 'pending':
      return ['cancel']
    case 'running':
      return ['pause', 'cancel']
    case 'paused':
      return ['resume', 'cancel']
    case 'completed':
      return ['delete']
    case 'completed_with_errors':
    case 'failed':
    case 'cancelled':
      return ['retry', 'delete']
    default: {
      const never: never = status
      return never
    }
  }
}
