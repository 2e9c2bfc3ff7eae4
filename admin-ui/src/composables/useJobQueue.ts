import { computed, getCurrentScope, onScopeDispose, shallowRef } from 'vue'
import { isMissingRoute, type ApiClient } from '../api/client'
import { ACTIVE_STATUSES, isFinalStatus, type Job, type JobStatus } from '../contract'
import { createCoalescer } from '../lib/coalesce'
import { isNewer, newestFirst } from '../lib/jobs'
import type { JobsSocket } from './useJobsSocket'

export interface JobQueueOptions {
  api: Pick<ApiClient, 'notifications' | 'dismissNotification' | 'dismissFinished' | 'listJobs' | 'getJob'>
  socket: Pick<JobsSocket, 'subscribe'>
  /** How long a completed card stays before it leaves (default 5000 ms). */
  completedTtlMs?: number
  /** Incoming updates are applied at most this often (default 100 ms): one render per flush. */
  flushMs?: number
  /** Cards (single jobs or groups) shown; the rest are summed up as "N more" (default 5). */
  maxCards?: number
  /** This many jobs of one type or more make one group card (default 3). */
  groupMin?: number
  /** Members shown inside an expanded group (default 3). */
  groupPreview?: number
  now?: () => number
  /**
   * A BroadcastChannel name shared by this user's tabs (one per user: two users may be signed in in two
   * tabs of one browser), so that a dismissal shows in every tab at once; none by default.
   */
  tabChannel?: string | null
}

export type StatusCounts = Partial<Record<JobStatus, number>>

export interface JobEntry {
  kind: 'job'
  key: string
  job: Job
}
export interface GroupEntry {
  kind: 'group'
  key: string
  type: string
  /** The jobs' shared name, or their type when names differ. */
  title: string
  count: number
  counts: StatusCounts
  /** Mean progress of the group (finished jobs count as 100, cancelled ones not at all). */
  progress: number | null
  /** The newest members (only filled while the group is expanded). */
  members: Job[]
  finished: number
  newest: Job
}
export type StackEntry = JobEntry | GroupEntry

/** Every card of the stack may be closed; a finished one is dismissed for good (on the server). */
export function isDismissable(job: Job): boolean {
  return isFinalStatus(job.status)
}

function count(jobs: Iterable<Job>): StatusCounts {
  const counts: StatusCounts = {}
  for (const job of jobs) counts[job.status] = (counts[job.status] ?? 0) + 1
  return counts
}

/**
 * The state of the notification stack. The server's list (GET /api/v1/notifications) is read at
 * start and after every (re)connection and replaces what the stack holds; between reads the socket's
 * `job_update`s are gathered in a Map and applied at most every `flushMs`, so a burst of thousands of
 * updates costs one render a tick. At most `maxCards` cards are shown, jobs of one type that come in
 * numbers are grouped into one card with counts, and the rest is summed up. Completed cards leave
 * `completedTtlMs` after they complete; dismissals go to the server, so other tabs agree.
 */
export function useJobQueue(options: JobQueueOptions) {
  const ttl = options.completedTtlMs ?? 5000
  const maxCards = options.maxCards ?? 5
  const groupMin = options.groupMin ?? 3
  const groupPreview = options.groupPreview ?? 3
  const now = options.now ?? (() => Date.now())

  /** Every job the stack holds (not reactive: `version` says when it changed). */
  const jobs = new Map<string, Job>()
  const version = shallowRef(0)
  /** When each completed card leaves (ms). */
  const expiries = new Map<string, number>()
  /** Jobs closed in this tab, with whether they were final then (a retry brings those back). */
  const dismissed = new Map<string, boolean>()
  const loadError = shallowRef<string | null>(null)
  /** Whether the server has GET /notifications (an older one has not: active jobs are listed instead). */
  const serverBacked = shallowRef(true)
  const expandedGroup = shallowRef<string | null>(null)
  let sweepTimer: ReturnType<typeof setTimeout> | undefined
  let sweepAt = Infinity
  let disposed = false
  let syncSeq = 0
  /** A counter of applied socket updates, and the value at each job's last one. */
  let tick = 0
  const touched = new Map<string, number>()

  function bump() {
    version.value += 1
  }

  function scheduleSweep() {
    let earliest = Infinity
    for (const at of expiries.values()) if (at < earliest) earliest = at
    if (earliest === sweepAt) return
    clearTimeout(sweepTimer)
    sweepAt = earliest
    if (earliest === Infinity) return
    sweepTimer = setTimeout(sweep, Math.max(0, earliest - now()))
  }

  function sweep() {
    // Everything due by the time this sweep was set for (or by now) leaves, in one render.
    const t = Math.max(now(), sweepAt + 50)
    sweepAt = Infinity
    let changed = false
    for (const [jobId, at] of expiries) {
      if (at > t) continue
      expiries.delete(jobId)
      touched.delete(jobId)
      changed = jobs.delete(jobId) || changed
    }
    if (changed) bump()
    scheduleSweep()
  }

  /** Applies one job's state (not newer than the held one: ignored). Returns whether anything changed. */
  function apply(job: Job): boolean {
    if (!job.showNotification) return false
    const wasDismissed = dismissed.get(job.jobId)
    if (wasDismissed !== undefined) {
      // A job closed while final comes back when it runs again (a retry); one closed while active stays closed.
      if (wasDismissed && !isFinalStatus(job.status)) dismissed.delete(job.jobId)
      else return false
    }
    const current = jobs.get(job.jobId)
    if (current && !isNewer(job, current)) return false
    jobs.set(job.jobId, job)
    if (job.status === 'completed') {
      if (!expiries.has(job.jobId)) expiries.set(job.jobId, now() + ttl)
    } else {
      expiries.delete(job.jobId)
    }
    return true
  }

  const incoming = createCoalescer<Job>({
    intervalMs: options.flushMs ?? 100,
    merge: (waiting, next) => (isNewer(next, waiting) ? next : waiting),
    flush(batch) {
      if (disposed) return
      let changed = false
      tick += 1
      for (const job of batch.values()) {
        touched.set(job.jobId, tick)
        changed = apply(job) || changed
      }
      if (changed) {
        bump()
        scheduleSweep()
      }
    },
  })

  function remove(jobId: string) {
    expiries.delete(jobId)
    touched.delete(jobId)
    if (jobs.delete(jobId)) bump()
  }

  async function readFromServer(): Promise<Job[]> {
    if (serverBacked.value) {
      try {
        return (await options.api.notifications()).jobs
      } catch (error) {
        if (!isMissingRoute(error)) throw error
        serverBacked.value = false
      }
    }
    // An older server: the active jobs, plus a re-read of every card it no longer lists as active.
    const { jobs: active } = await options.api.listJobs({ status: ACTIVE_STATUSES, limit: 500 })
    const seen = new Set(active.map((job) => job.jobId))
    const moved = [...jobs.values()].filter((job) => !isFinalStatus(job.status) && !seen.has(job.jobId))
    // A job that is gone (404) leaves; one that could not be read now keeps its card.
    const reread = await Promise.all(
      moved.map((job) => options.api.getJob(job.jobId).catch((e: unknown) => ((e as { status?: number }).status === 404 ? null : job))),
    )
    const kept = [...jobs.values()].filter((job) => isFinalStatus(job.status) && !seen.has(job.jobId))
    return [...active, ...reread.filter((job): job is Job => job !== null && !seen.has(job.jobId)), ...kept]
  }

  /** Replaces the stack with the server's view (what changed since, from the socket, still wins). */
  async function sync() {
    const seq = ++syncSeq
    incoming.flushNow()
    const since = tick
    try {
      // Once more at once after a network error: a connection kept alive across the outage may be dead.
      const listed = await readFromServer().catch((e: unknown) => {
        if ((e as { code?: string }).code === 'NETWORK_ERROR') return readFromServer()
        throw e
      })
      if (disposed || seq !== syncSeq) return
      incoming.flushNow()
      const keep = new Set(listed.map((job) => job.jobId))
      for (const job of listed) apply(job)
      // Cards the server no longer lists left (dismissed in another tab, expired, deleted), unless the
      // socket told of them after the list was asked for.
      for (const jobId of [...jobs.keys()]) if (!keep.has(jobId) && (touched.get(jobId) ?? 0) <= since) jobs.delete(jobId)
      for (const jobId of [...touched.keys()]) if (!jobs.has(jobId)) touched.delete(jobId)
      // The server keeps dismissals of finished jobs: those it no longer lists need not be remembered
      // here (a job closed while it ran still is: its updates keep coming over the socket).
      if (serverBacked.value) for (const [jobId, wasFinal] of [...dismissed]) if (wasFinal && !keep.has(jobId)) dismissed.delete(jobId)
      for (const jobId of [...expiries.keys()]) if (!jobs.has(jobId)) expiries.delete(jobId)
      loadError.value = null
      bump()
      scheduleSweep()
    } catch (error) {
      if (seq === syncSeq) loadError.value = error instanceof Error ? error.message : String(error)
    }
  }

  const unsubscribe = options.socket.subscribe((message) => {
    switch (message.type) {
      case 'connected':
        void sync()
        return
      case 'job_update':
        incoming.push(message.job.jobId, message.job)
        return
      case 'job_deleted':
        dismissed.delete(message.jobId)
        incoming.flushNow()
        remove(message.jobId)
        return
      case 'pong':
      case 'error':
      case 'job_log':
        return
      default: {
        const never: never = message
        return never
      }
    }
  })

  // Other tabs of this browser hear of a dismissal at once (other devices at their next read).
  type TabMessage = { dismissed: string[] } | { clearedFinished: true }
  const channel = options.tabChannel && typeof BroadcastChannel === 'function' ? new BroadcastChannel(options.tabChannel) : null
  if (channel) {
    channel.onmessage = (event: MessageEvent<TabMessage>) => {
      if (disposed) return
      incoming.flushNow()
      const message = event.data
      const gone = 'dismissed' in message ? message.dismissed.map((id) => jobs.get(id)).filter((job): job is Job => !!job) : [...jobs.values()].filter((job) => isFinalStatus(job.status))
      for (const job of gone) dismissLocally(job)
      if (gone.length) bump()
    }
  }
  const tell = (message: TabMessage) => {
    try {
      channel?.postMessage(message)
    } catch {
      // A closed channel (the page is going away).
    }
  }

  // Coming back to a tab: another tab or device may have dismissed cards meanwhile.
  let lastVisibleSync = now()
  const onVisible = () => {
    if (document.visibilityState !== 'visible' || now() - lastVisibleSync < 2000) return
    lastVisibleSync = now()
    void sync()
  }
  globalThis.document?.addEventListener('visibilitychange', onVisible)

  function dispose() {
    disposed = true
    unsubscribe()
    incoming.stop()
    clearTimeout(sweepTimer)
    globalThis.document?.removeEventListener('visibilitychange', onVisible)
    channel?.close()
  }
  if (getCurrentScope()) onScopeDispose(dispose)

  // -- What is shown --------------------------------------------------------------------------

  const all = computed(() => {
    void version.value
    return [...jobs.values()].sort(newestFirst)
  })

  const entries = computed<StackEntry[]>(() => {
    const byType = new Map<string, Job[]>()
    for (const job of all.value) {
      const list = byType.get(job.type)
      if (list) list.push(job)
      else byType.set(job.type, [job])
    }
    const out: StackEntry[] = []
    const grouped = new Set<string>()
    for (const job of all.value) {
      const members = byType.get(job.type)!
      if (members.length < groupMin) {
        out.push({ kind: 'job', key: job.jobId, job })
        continue
      }
      if (grouped.has(job.type)) continue
      grouped.add(job.type)
      const counts = count(members)
      const names = new Set(members.map((m) => m.name))
      const finished = members.filter((m) => isFinalStatus(m.status)).length
      // Cancelled jobs are left out of the group's progress; finished ones count as done.
      const measured = members.filter((m) => m.status !== 'cancelled')
      const progress = measured.length
        ? Math.round(measured.reduce((sum, m) => sum + (isFinalStatus(m.status) ? 100 : m.progress), 0) / measured.length)
        : null
      const key = `type:${job.type}`
      out.push({
        kind: 'group',
        key,
        type: job.type,
        title: names.size === 1 ? job.name : job.type,
        count: members.length,
        counts,
        progress,
        finished,
        newest: job,
        members: expandedGroup.value === key ? members.slice(0, groupPreview) : [],
      })
    }
    return out
  })

  const shown = computed(() => entries.value.slice(0, maxCards))
  const more = computed(() => {
    const rest = entries.value.slice(maxCards)
    return { cards: rest.length, jobs: rest.reduce((sum, entry) => sum + (entry.kind === 'group' ? entry.count : 1), 0) }
  })
  const counts = computed(() => count(all.value))
  const finishedCount = computed(() => all.value.filter((job) => isFinalStatus(job.status)).length)

  async function dismissOnServer(jobId: string) {
    if (!serverBacked.value) return
    try {
      await options.api.dismissNotification(jobId)
    } catch (error) {
      if (isMissingRoute(error)) serverBacked.value = false
      // Otherwise (the job was deleted meanwhile, the network): the card is gone here anyway.
    }
  }

  function dismissLocally(job: Job) {
    dismissed.set(job.jobId, isFinalStatus(job.status))
    expiries.delete(job.jobId)
    touched.delete(job.jobId)
    jobs.delete(job.jobId)
  }

  /** Closes finished jobs, `limit` requests at a time. */
  async function dismissMany(list: Job[]) {
    for (const job of list) dismissLocally(job)
    bump()
    tell({ dismissed: list.map((job) => job.jobId) })
    const queue = [...list]
    await Promise.all(
      Array.from({ length: Math.min(4, queue.length) }, async () => {
        for (let job = queue.shift(); job; job = queue.shift()) await dismissOnServer(job.jobId)
      }),
    )
  }

  return {
    /** Every job held, newest first. */
    cards: all,
    entries,
    shown,
    more,
    counts,
    finishedCount,
    expandedGroup,
    serverBacked,
    loadError,
    ready: sync(),
    sync,
    toggleGroup(key: string) {
      expandedGroup.value = expandedGroup.value === key ? null : key
    },
    /** Closes one card; a finished job's dismissal is kept by the server for every tab and device. */
    async dismiss(jobId: string) {
      incoming.flushNow()
      const job = jobs.get(jobId)
      if (!job) return
      dismissLocally(job)
      bump()
      tell({ dismissed: [jobId] })
      await dismissOnServer(jobId)
    },
    /** Closes every finished card of a group. */
    async dismissGroup(type: string) {
      incoming.flushNow()
      await dismissMany([...jobs.values()].filter((job) => job.type === type && isFinalStatus(job.status)))
    },
    /** "Clear finished": every finished card, in one request. */
    async clearFinished() {
      incoming.flushNow()
      const finished = [...jobs.values()].filter((job) => isFinalStatus(job.status))
      for (const job of finished) dismissLocally(job)
      bump()
      tell({ clearedFinished: true })
      if (!serverBacked.value) return
      try {
        await options.api.dismissFinished()
      } catch (error) {
        if (isMissingRoute(error)) serverBacked.value = false
        else loadError.value = error instanceof Error ? error.message : String(error)
      }
    },
    dispose,
  }
}
