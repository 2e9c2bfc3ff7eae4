import { JOB_STATUSES, type Job, type JobStatus } from '../contract.js'
import type { PostRecord } from '../store/PostStore.js'

export const JOB_POST_TYPE = 'jobs'

/** Everything stored of a job: the public Job plus the runtime's private fields. */
export interface JobRecord extends Job {
  data: unknown
  /** A processor should run this job (it has, or had, a `queue_order`). */
  queued: boolean
  attemptToken: string | null
  lockedUntil: string | null
  pausedFrom: JobStatus | null
}

/** Meta keys of a job post. One field, one row. */
export const META = {
  jobId: 'job_id',
  name: 'name',
  description: 'description',
  type: 'type',
  status: 'status',
  progress: 'progress',
  iconSvg: 'icon_svg',
  metadata: 'metadata',
  errorMessage: 'error_message',
  result: 'result',
  source: 'source',
  showNotification: 'show_notification',
  timeout: 'timeout',
  priority: 'priority',
  attempts: 'attempts',
  maxAttempts: 'max_attempts',
  runAt: 'run_at',
  startedAt: 'started_at',
  completedAt: 'completed_at',
  data: 'data',
  parentJobId: 'parent_job_id',
  queued: 'queued',
  /** Present only while the job waits to be claimed: `<inverted priority>|<runAt>`, see queueOrder. */
  queueOrder: 'queue_order',
  lockedUntil: 'locked_until',
  attemptToken: 'attempt_token',
  pausedFrom: 'paused_from',
} as const

const PRIORITY_OFFSET = 1000

/** Sort key of a waiting job: higher priority first, then earlier runAt (text order = claim order). */
export function queueOrder(priority: number, runAt: string): string {
  return `${String(PRIORITY_OFFSET - priority).padStart(4, '0')}|${runAt}`
}

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

function int(text: string | undefined, fallback: number): number {
  const value = text === undefined ? NaN : Number(text)
  return Number.isFinite(value) ? value : fallback
}

function status(text: string | undefined): JobStatus {
  return JOB_STATUSES.includes(text as JobStatus) ? (text as JobStatus) : 'pending'
}

export function jobRecordFromPost(post: PostRecord): JobRecord {
  const m = post.meta
  const metadata = decodeJson(m[META.metadata], {})
  return {
    id: post.id,
    jobId: post.slug,
    name: m[META.name] ?? post.title,
    description: m[META.description] ?? '',
    type: m[META.type] ?? '',
    status: status(m[META.status]),
    progress: int(m[META.progress], 0),
    iconSvg: m[META.iconSvg] ?? null,
    metadata: metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? (metadata as Record<string, unknown>) : {},
    result: decodeJson(m[META.result], null),
    errorMessage: m[META.errorMessage] ?? null,
    source: m[META.source] ?? null,
    showNotification: m[META.showNotification] !== '0',
    priority: int(m[META.priority], 0),
    attempts: int(m[META.attempts], 0),
    maxAttempts: int(m[META.maxAttempts], 1),
    runAt: m[META.runAt] ?? post.createdAt,
    timeout: m[META.timeout] === undefined ? null : int(m[META.timeout], 0),
    createdBy: post.authorId,
    createdAt: post.createdAt,
    updatedAt: post.updatedAt,
    startedAt: m[META.startedAt] ?? null,
    completedAt: m[META.completedAt] ?? null,
    parentJobId: m[META.parentJobId] ?? null,
    data: decodeJson(m[META.data], null),
    queued: m[META.queued] === '1',
    attemptToken: m[META.attemptToken] ?? null,
    lockedUntil: m[META.lockedUntil] ?? null,
    pausedFrom: m[META.pausedFrom] ? status(m[META.pausedFrom]) : null,
  }
}

/** The public job object of the contract (no payload, tokens or leases). */
export function toPublicJob(record: JobRecord): Job {
  const { data: _data, queued: _queued, attemptToken: _token, lockedUntil: _locked, pausedFrom: _paused, ...job } = record
  return job
}
