import os from 'node:os'
import type { ClusterInstance } from '../contract.js'
import { isoNow, type Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { PostStore } from '../store/PostStore.js'

/** Instances are posts too: one post of this type per running process, its fields in meta. */
export const INSTANCE_POST_TYPE = 'jobpost_instances'

const META = {
  host: 'host',
  pid: 'pid',
  role: 'role',
  startedAt: 'started_at',
  lastSeen: 'last_seen',
  runningJobs: 'running_jobs',
} as const

export interface InstanceRegistryOptions {
  store: PostStore
  clock: Clock
  logger: Logger
  instanceId: string
  role: ClusterInstance['role']
  /** Jobs this instance is running now (reported with each heartbeat). */
  runningJobs: () => number
  /** How often this instance writes `last_seen` (default 5 s). */
  intervalMs?: number
  /** An instance not seen for this long is no longer `alive` (default 3 intervals). */
  aliveForMs?: number
  /** An instance not seen for this long is forgotten (default 1 hour). */
  forgetAfterMs?: number
}

/**
 * The registry of running instances (servers and workers), for GET /api/v1/jobs/stats. Each
 * instance writes a heartbeat; one that stops (crash, SIGKILL) stays listed as not alive until it
 * is forgotten, and a clean shutdown removes its entry at once.
 */
export class InstanceRegistry {
  private postId: number | null = null
  private timer?: NodeJS.Timeout
  private readonly intervalMs: number
  private readonly aliveForMs: number
  private readonly forgetAfterMs: number
  private stopped = false

  constructor(private readonly options: InstanceRegistryOptions) {
    this.intervalMs = options.intervalMs ?? 5000
    this.aliveForMs = options.aliveForMs ?? this.intervalMs * 3
    this.forgetAfterMs = options.forgetAfterMs ?? 3600_000
  }

  async start(): Promise<void> {
    await this.register()
    this.timer = setInterval(() => {
      this.beat().catch((error) => this.options.logger.warn({ err: error }, 'Instance heartbeat failed'))
    }, this.intervalMs)
    this.timer.unref()
  }

  /** Writes last_seen (re-registering if our entry was removed) and forgets long-gone instances. */
  async beat(): Promise<void> {
    if (this.stopped) return
    const { store, clock } = this.options
    const now = isoNow(clock)
    const updated =
      this.postId != null &&
      (await store.updatePost(this.postId, {
        meta: { [META.lastSeen]: now, [META.runningJobs]: String(this.options.runningJobs()) },
        updatedAt: now,
      }))
    if (!updated) await this.register()
    const cutoff = new Date(clock.now() - this.forgetAfterMs).toISOString()
    const gone = await store.findPostIds({
      postType: INSTANCE_POST_TYPE,
      where: [{ key: META.lastSeen, lt: cutoff }],
      limit: 100,
    })
    if (gone.length) await store.deletePosts(gone)
  }

  /** Every known instance, most recently started first. */
  async list(): Promise<ClusterInstance[]> {
    const { store, clock } = this.options
    const { ids } = await store.queryPostIds({ postType: INSTANCE_POST_TYPE, limit: 500 })
    const aliveSince = clock.now() - this.aliveForMs
    return (await store.getPosts(ids)).map((post) => {
      const lastSeen = post.meta[META.lastSeen] ?? post.updatedAt
      return {
        id: post.slug,
        host: post.meta[META.host] ?? '',
        pid: Number(post.meta[META.pid] ?? 0),
        role: (post.meta[META.role] as ClusterInstance['role']) ?? 'server',
        startedAt: post.meta[META.startedAt] ?? post.createdAt,
        lastSeen,
        alive: Date.parse(lastSeen) >= aliveSince,
        runningJobs: Number(post.meta[META.runningJobs] ?? 0),
      }
    })
  }

  /** Stops the heartbeat and removes this instance's entry. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.timer)
    if (this.postId != null) {
      await this.options.store.deletePosts([this.postId]).catch((error) => {
        this.options.logger.warn({ err: error }, 'Could not remove this instance from the registry')
      })
    }
  }

  private async register() {
    const { store, clock, instanceId } = this.options
    const now = isoNow(clock)
    const existing = await store.findPostId(INSTANCE_POST_TYPE, instanceId)
    if (existing != null) await store.deletePosts([existing])
    this.postId = await store.createPost({
      postType: INSTANCE_POST_TYPE,
      title: instanceId,
      slug: instanceId,
      createdAt: now,
      meta: {
        [META.host]: os.hostname(),
        [META.pid]: String(process.pid),
        [META.role]: this.options.role,
        [META.startedAt]: now,
        [META.lastSeen]: now,
        [META.runningJobs]: String(this.options.runningJobs()),
      },
    })
  }
}
