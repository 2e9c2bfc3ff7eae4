import { JOB_CHANGE_EVENTS, type ClusterInstance, type JobStats } from '../contract.js'
import { OffsetClock, type Clock } from '../clock.js'
import type { JobpostConfig } from '../config.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { Logger } from '../logger.js'
import type { RealtimeServer } from '../realtime/RealtimeServer.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import type { JobRuntime } from '../runtime/JobRuntime.js'
import type { PostStore } from '../store/PostStore.js'
import { followDatabaseClock } from './databaseClock.js'
import { InstanceRegistry } from './InstanceRegistry.js'
import { decodeLogNotice, LOG_CHANNEL } from '../logs/notice.js'
import { PgNotifier, type ClusterEvent } from './PgNotifier.js'
import { SqliteOutbox } from './SqliteOutbox.js'

export { InstanceRegistry, INSTANCE_POST_TYPE } from './InstanceRegistry.js'
export { PgNotifier } from './PgNotifier.js'

export interface ClusterOptions {
  config: JobpostConfig
  store: PostStore
  clock: Clock
  hooks: HookRegistry
  realtime: RealtimeServer
  jobs: RegisterJobs
  runtime: JobRuntime
  logger: Logger
  role: ClusterInstance['role']
  /** Heartbeat interval of the instance registry (default 5 s). */
  heartbeatMs?: number
}

export interface Cluster {
  readonly instanceId: string
  readonly instances: InstanceRegistry
  /** The LISTEN/NOTIFY link, on PostgreSQL only. */
  readonly notifier: PgNotifier | null
  stop(): Promise<void>
}

/** The filter through which `GET /api/v1/jobs/stats` gets its `instances` field. */
export const STATS_FILTER = 'jobs_stats'

/**
 * What makes several Jobpost processes on one database behave as one system:
 * - every instance registers itself and writes heartbeats (listed in the jobs stats);
 * - on PostgreSQL, the clock follows the database's (when it is an OffsetClock), and job events
 *   travel between instances by LISTEN/NOTIFY, so a WebSocket client of any instance sees the jobs
 *   that run on every other one. Claiming needs nothing here: it is FOR UPDATE SKIP LOCKED.
 * - on a SQLite file, job events travel through the outbox table (SqliteOutbox), read when
 *   `PRAGMA data_version` shows another process committed.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { config, store, hooks, realtime, jobs, runtime, logger } = options
  const log = logger.child({ component: 'cluster' })
  const instanceId = runtime.workerId
  const stops: (() => unknown)[] = []

  if (config.database.dialect === 'postgres' && options.clock instanceof OffsetClock) {
    stops.push(await followDatabaseClock({ store, clock: options.clock, logger: log }))
  }

  const instances = new InstanceRegistry({
    store,
    clock: options.clock,
    logger: log,
    instanceId,
    role: options.role,
    runningJobs: () => runtime.runningCount,
    intervalMs: options.heartbeatMs,
  })
  await instances.start()
  const addInstances = async (stats: JobStats) => ({ ...stats, instances: await instances.list() })
  hooks.addFilter(STATS_FILTER, addInstances, { owner: 'cluster' })
  stops.push(() => hooks.removeFilter(STATS_FILTER, addInstances))

  let notifier: PgNotifier | null = null
  let outbox: SqliteOutbox | null = null
  /** Where this instance's job events go for the others: NOTIFY, or the SQLite outbox. */
  let link: { publish(event: ClusterEvent): void } | null = null
  if (config.database.dialect === 'postgres') {
    const relay = new RemoteEventRelay({ jobs, realtime, runtime, logger: log })
    notifier = new PgNotifier({
      connectionString: config.database.connectionString,
      instanceId,
      logger: log,
      onEvents: (events) => relay.receive(events),
      // New log lines elsewhere: subscribers here read them after their last seq (core/logs).
      channels: {
        [LOG_CHANNEL]: (payload) => {
          for (const [jobId, seq] of decodeLogNotice(payload, instanceId)) realtime.logs?.fanout.remote(jobId, seq)
        },
      },
      onReconnect: () => realtime.logs?.fanout.resync(),
    })
    await notifier.start()
    link = notifier
    stops.push(() => relay.stop())
  } else if (config.database.filename !== ':memory:') {
    // Several processes on one SQLite file: events through the outbox table (migration 009).
    const relay = new RemoteEventRelay({ jobs, realtime, runtime, logger: log })
    outbox = new SqliteOutbox({ knex: store.db.knex, clock: options.clock, logger: log, instanceId, onEvents: (events) => relay.receive(events) })
    await outbox.start()
    link = outbox
    stops.push(() => relay.stop())
  }
  if (link) {
    const target = link
    for (const event of JOB_CHANGE_EVENTS) {
      stops.push(
        hooks.on(
          event,
          (payload) => {
            const { job } = payload as { job: { jobId: string; status: string } }
            target.publish({ jobId: job.jobId, kind: 'change', claimable: job.status === 'pending' })
          },
          'cluster',
        ),
      )
    }
    stops.push(
      hooks.on('job:progress', ({ job }) => target.publish({ jobId: job.jobId, kind: 'progress' }), 'cluster'),
      hooks.on('job:deleted', ({ jobId, createdBy }) => target.publish({ jobId, kind: 'deleted', createdBy }), 'cluster'),
    )
  }

  let stopped: Promise<void> | undefined
  return {
    instanceId,
    instances,
    notifier,
    stop() {
      stopped ??= (async () => {
        for (const stop of stops.splice(0).reverse()) await stop()
        await notifier?.close()
        await outbox?.close()
        await instances.stop()
      })()
      return stopped
    },
  }
}

/** Jobs read per query when relaying other instances' events. */
const RELAY_READ_BATCH = 500

/**
 * Applies other instances' events here: reads each job once (however many clients there are),
 * hands it to the local realtime server, whose per-client filter and coalescing apply as for local
 * events, wakes the local runtime when a job became claimable (without a read), and aborts a local
 * attempt of a job cancelled or paused elsewhere. Reads never overlap; events that arrive during a
 * read cause one more read afterwards.
 */
class RemoteEventRelay {
  /** Jobs to read, with the strongest kind of change seen for each (`change` beats `progress`). */
  private pending = new Map<string, ClusterEvent['kind']>()
  private reading = false
  private stopped = false

  constructor(
    private readonly deps: { jobs: RegisterJobs; realtime: RealtimeServer; runtime: JobRuntime; logger: Logger },
  ) {}

  receive(events: ClusterEvent[]): void {
    for (const event of events) {
      if (this.stopped) return
      if (event.kind === 'deleted') {
        this.deps.realtime.publishDeleted(event.jobId, event.createdBy ?? null)
        continue
      }
      if (event.claimable) this.deps.runtime.wake()
      // With no WebSocket client here (a worker), there is nobody to read the job for, unless it
      // runs here: then a cancel elsewhere must abort it.
      const drivenHere = this.deps.runtime.isRunning(event.jobId) || this.deps.jobs.trackedToken(event.jobId) !== undefined
      if (this.deps.realtime.clientCount === 0 && !(event.kind === 'change' && drivenHere)) continue
      const seen = this.pending.get(event.jobId)
      this.pending.set(event.jobId, seen === 'change' || event.kind === 'change' ? 'change' : 'progress')
    }
    void this.readPending()
  }

  stop(): void {
    this.stopped = true
  }

  /**
   * Reads every job with news in one query per batch (a burst of thousands of jobs on another
   * instance costs a few reads here, not one each); news that arrives during a read is read after.
   */
  private async readPending(): Promise<void> {
    if (this.reading) return
    this.reading = true
    try {
      while (this.pending.size && !this.stopped) {
        const batch = [...this.pending].slice(0, RELAY_READ_BATCH)
        for (const [jobId] of batch) this.pending.delete(jobId)
        const kinds = new Map(batch)
        try {
          for (const job of await this.deps.jobs.getJobsByIds([...kinds.keys()])) {
            if (this.stopped) return
            this.deps.realtime.publish(job, kinds.get(job.jobId) === 'progress' ? 'progress' : 'change')
            if (job.status === 'cancelled' && this.deps.runtime.isRunning(job.jobId)) this.deps.runtime.abortCancelled(job.jobId)
            // A pause elsewhere aborts the attempt here at once, as a cancel does.
            if (job.status === 'paused' && this.deps.runtime.isRunning(job.jobId)) this.deps.runtime.abortPaused(job.jobId)
            // A tracked job this process drives, paused or cancelled elsewhere: tell its plugin now.
            if ((job.status === 'paused' || job.status === 'cancelled') && this.deps.jobs.trackedToken(job.jobId)) {
              const jobs = this.deps.jobs
              void jobs.getJobRecord(job.jobId).then((record) => jobs.trackedChanged(job.jobId, record), () => undefined)
            }
          }
        } catch (error) {
          this.deps.logger.warn({ err: error, jobs: batch.length }, 'Could not read jobs another instance changed')
        }
      }
    } finally {
      this.reading = false
    }
  }
}
