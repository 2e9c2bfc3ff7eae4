import type { Job, JobStatus } from '../contract.js'
import type { JobState, MetaPatch, StoredJob } from '../store/jobs/JobStore.js'

export const JOB_POST_TYPE = 'jobs'

/** Everything stored of a job: the public Job plus the runtime's private fields. */
export interface JobRecord extends Job {
  data: unknown
  /** A processor should run this job (else a plugin drives it: a tracked job). */
  queued: boolean
  attemptToken: string | null
  lockedUntil: string | null
  pausedFrom: JobStatus | null
  /** What the processor saved with `checkpoint(value)`, given back on its next attempt. */
  checkpoint: unknown
  /** The stored form this record was read from (typed row + meta). */
  stored: StoredJob
}

/**
 * Meta keys of a job post: only what is not in its typed row (`job_state`), and only when set.
 * The name is the post title; the jobId its slug.
 */
export const META = {
  description: 'description',
  iconSvg: 'icon_svg',
  metadata: 'metadata',
  errorMessage: 'error_message',
  result: 'result',
  data: 'data',
  checkpoint: 'checkpoint',
} as const

export function encodeJson(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value)
}

function decodeJson(text: string | undefined, fallback: unknown): unknown {
  if (text === undefined) return fallback
  try {
    return JSON.parse(text)
  } catch {
    return fallback
  }
}

const iso = (ms: number) => new Date(ms).toISOString()
const isoOrNull = (ms: number | null) => (ms == null ? null : iso(ms))

export function jobRecordFromStored(stored: StoredJob): JobRecord {
  const { state: s, meta: m } = stored
  const metadata = decodeJson(m[META.metadata], {})
  return {
    id: s.postId,
    jobId: stored.jobId,
    name: stored.name,
    description: m[META.description] ?? '',
    type: s.type,
    status: s.status,
    progress: s.progress,
    iconSvg: m[META.iconSvg] ?? null,
    metadata: metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? (metadata as Record<string, unknown>) : {},
    result: decodeJson(m[META.result], null),
    errorMessage: m[META.errorMessage] ?? null,
    source: s.source,
    showNotification: s.showNotification,
    priority: s.priority,
    attempts: s.attempts,
    maxAttempts: s.maxAttempts,
    runAt: iso(s.runAt),
    timeout: s.timeoutMs,
    createdBy: s.createdBy,
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
    startedAt: isoOrNull(s.startedAt),
    completedAt: isoOrNull(s.completedAt),
    parentJobId: s.parentJobId,
    data: decodeJson(m[META.data], null),
    queued: s.queued,
    attemptToken: s.attemptToken,
    lockedUntil: isoOrNull(s.lockedUntil),
    pausedFrom: s.pausedFrom,
    checkpoint: decodeJson(m[META.checkpoint], null),
    stored,
  }
}

/** The record after a change wrote `state` and `meta` (nothing read back). */
export function recordAfter(record: JobRecord, state: JobState, meta: MetaPatch = {}): JobRecord {
  const merged = { ...record.stored.meta }
  for (const [key, value] of Object.entries(meta)) {
    if (value === null) delete merged[key]
    else merged[key] = value
  }
  return jobRecordFromStored({ ...record.stored, state, meta: merged })
}

/** The public job object of the contract (no payload, tokens or leases). */
export function toPublicJob(record: JobRecord): Job {
  // Field by field (one object of a fixed shape: this runs for every event of every job).
  const r = record
  return {
    id: r.id, jobId: r.jobId, name: r.name, description: r.description, type: r.type, status: r.status,
    progress: r.progress, iconSvg: r.iconSvg, metadata: r.metadata, result: r.result, errorMessage: r.errorMessage,
    source: r.source, showNotification: r.showNotification, priority: r.priority, attempts: r.attempts,
    maxAttempts: r.maxAttempts, runAt: r.runAt, timeout: r.timeout, createdBy: r.createdBy, createdAt: r.createdAt,
    updatedAt: r.updatedAt, startedAt: r.startedAt, completedAt: r.completedAt, parentJobId: r.parentJobId,
    // What a pause or retry would do (see RegisterJobs.pause/retry): clients offer only these.
    pausable: r.queued || r.stored.meta.on_pause === '1',
    retryable: r.queued,
  }
}
