import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { JOB_STATUSES, type Job } from '../contract.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'

/**
 * Job metrics: the Prometheus registry behind /metrics. Each Jobpost has its own prom-client Registry (never the
 * global one), so several instances can live in one process. Counters and histograms count what
 * this process saw (its own events); the `jobpost_jobs` gauge reads the database at scrape time.
 */

/** Job types become label values; past this many distinct ones the rest are labelled `other`. */
const MAX_TYPE_LABELS = 100

export interface JobMetricsOptions {
  hooks: HookRegistry
  jobs: RegisterJobs
}

export class JobMetrics {
  readonly registry = new Registry()
  private readonly types = new Set<string>()
  private readonly unsubscribe: (() => void)[] = []

  constructor(private readonly options: JobMetricsOptions) {
    const registers = [this.registry]
    const created = new Counter({ name: 'jobpost_jobs_created_total', help: 'Jobs created, by type.', labelNames: ['type'], registers })
    const finished = new Counter({
      name: 'jobpost_jobs_finished_total',
      help: 'Jobs that reached a final status, by type and status.',
      labelNames: ['type', 'status'],
      registers,
    })
    const retries = new Counter({ name: 'jobpost_job_retries_total', help: 'Failed attempts that were retried, by type.', labelNames: ['type'], registers })
    const duration = new Histogram({
      name: 'jobpost_job_duration_seconds',
      help: 'Time from a job’s start to its final status, by type and status.',
      labelNames: ['type', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    })
    const jobs = options.jobs
    new Gauge({
      name: 'jobpost_jobs',
      help: 'Jobs in the database, by status (read at scrape time).',
      labelNames: ['status'],
      registers,
      async collect() {
        const stats = await jobs.stats()
        for (const status of JOB_STATUSES) this.set({ status }, stats.byStatus[status] ?? 0)
      },
    })

    const onFinished = ({ job }: { job: Job }) => {
      const labels = { type: this.typeLabel(job.type), status: job.status }
      finished.inc(labels)
      if (job.startedAt && job.completedAt) {
        duration.observe(labels, Math.max(0, Date.parse(job.completedAt) - Date.parse(job.startedAt)) / 1000)
      }
    }
    const { hooks } = options
    this.unsubscribe.push(
      hooks.on('job:created', ({ job }) => created.inc({ type: this.typeLabel(job.type) })),
      hooks.on('job:retry', ({ job }) => retries.inc({ type: this.typeLabel(job.type) })),
      hooks.on('job:completed', onFinished),
      hooks.on('job:failed', onFinished),
      hooks.on('job:cancelled', onFinished),
    )
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** The Prometheus text exposition of this instance's registry. */
  metrics(): Promise<string> {
    return this.registry.metrics()
  }

  private typeLabel(type: string): string {
    if (this.types.has(type)) return type
    if (this.types.size >= MAX_TYPE_LABELS) return 'other'
    this.types.add(type)
    return type
  }

  dispose(): void {
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe()
    this.registry.clear()
  }
}
