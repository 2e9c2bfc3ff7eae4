import type { Clock } from '../clock.js'
import type { JobLogLine, JobLogMessage } from '../contract.js'
import type { Logger } from '../logger.js'

/** What the fan-out needs to read: a job's post id, its last seq, and lines after a seq. */
export interface LogSource {
  lastSeq(postId: number): Promise<number>
  readLines(postId: number, after: number, limit: number): Promise<JobLogLine[]>
}

export interface LogFanoutOptions {
  source: LogSource
  clock: Clock
  logger: Logger
  /** At most one `job_log` message per subscription per this many ms (default 100: 10 a second). */
  intervalMs?: number
  /** Lines held for one slow subscription; beyond it the oldest are skipped (the client can page them). */
  maxBufferedLines?: number
}

export interface LogSubscription {
  readonly jobId: string
  /** Ends the subscription; nothing is sent after it. */
  close(): void
}

interface Subscriber {
  jobId: string
  send(message: JobLogMessage): void
  /** Lines up to this seq were current when it subscribed, or sent already. */
  after: number
  ready: boolean
  buffer: JobLogLine[]
  lastSentAt: number
  timer?: NodeJS.Timeout
  closed: boolean
}

interface JobFeed {
  postId: number
  /** The highest seq handed to this job's subscribers. */
  lastSeq: number
  subscribers: Set<Subscriber>
  /** A read of new lines from the database is under way / wanted again after it. */
  reading: boolean
  readAgain: boolean
}

const READ_PAGE = 1000

/**
 * Fan-out of new log lines to subscriptions (the WebSocket `subscribe_logs`). Lines written in this
 * process arrive from the writer after each commit; lines written by other instances are announced
 * by job id and seq (PostgreSQL NOTIFY) and read once per job, however many subscribers it has.
 * Each subscription gets every line after the moment it subscribed, in seq order, in at most
 * 1000 / intervalMs messages a second.
 */
export class LogFanout {
  private readonly feeds = new Map<string, JobFeed>()
  private readonly intervalMs: number
  private readonly maxBufferedLines: number
  private closed = false

  constructor(private readonly options: LogFanoutOptions) {
    this.intervalMs = options.intervalMs ?? 100
    this.maxBufferedLines = options.maxBufferedLines ?? 20_000
  }

  get subscriptionCount(): number {
    let n = 0
    for (const feed of this.feeds.values()) n += feed.subscribers.size
    return n
  }

  /** Subscribes to a job the caller has already checked the visibility of. */
  async subscribe(job: { jobId: string; postId: number }, send: (message: JobLogMessage) => void): Promise<LogSubscription> {
    let feed = this.feeds.get(job.jobId)
    if (!feed) {
      feed = { postId: job.postId, lastSeq: 0, subscribers: new Set(), reading: false, readAgain: false }
      this.feeds.set(job.jobId, feed)
    }
    const subscriber: Subscriber = { jobId: job.jobId, send, after: Infinity, ready: false, buffer: [], lastSentAt: -Infinity, closed: false }
    feed.subscribers.add(subscriber)
    const subscription: LogSubscription = { jobId: job.jobId, close: () => this.unsubscribe(subscriber) }
    try {
      const current = await this.options.source.lastSeq(job.postId)
      // Lines committed before this read are history (GET .../logs); later ones are live.
      subscriber.after = current
      subscriber.ready = true
      if (feed.lastSeq < current) feed.lastSeq = current
      // Lines that went by while it was not ready are read again from the database, in order.
      const missed = subscriber.buffer.some((line) => line.seq > current)
      subscriber.buffer = []
      if (missed || feed.reading) this.requestRead(job.jobId, feed)
    } catch (error) {
      this.unsubscribe(subscriber)
      throw error
    }
    return subscription
  }

  private unsubscribe(subscriber: Subscriber) {
    if (subscriber.closed) return
    subscriber.closed = true
    clearTimeout(subscriber.timer)
    subscriber.buffer = []
    const feed = this.feeds.get(subscriber.jobId)
    if (!feed) return
    feed.subscribers.delete(subscriber)
    if (feed.subscribers.size === 0 && !feed.reading) this.feeds.delete(subscriber.jobId)
  }

  /** Whether anyone here follows the job's lines. */
  follows(jobId: string): boolean {
    return this.feeds.has(jobId)
  }

  /** Lines this process wrote (after commit). A gap before them means lines from elsewhere: read. */
  written(written: Map<string, JobLogLine[]>): void {
    if (this.closed) return
    for (const [jobId, lines] of written) {
      const feed = this.feeds.get(jobId)
      if (!feed || lines.length === 0) continue
      if (feed.reading || lines[0]!.seq > this.minAfter(feed) + 1) {
        this.requestRead(jobId, feed)
        continue
      }
      this.deliver(feed, lines)
    }
  }

  /** Another instance wrote lines of a job up to `seq`. */
  remote(jobId: string, seq: number): void {
    const feed = this.feeds.get(jobId)
    if (!feed || this.closed || seq <= feed.lastSeq) return
    this.requestRead(jobId, feed)
  }

  /** After a lost LISTEN connection: read whatever every subscribed job wrote meanwhile. */
  resync(): void {
    for (const [jobId, feed] of this.feeds) this.requestRead(jobId, feed)
  }

  close(): void {
    this.closed = true
    for (const feed of this.feeds.values()) for (const subscriber of [...feed.subscribers]) this.unsubscribe(subscriber)
    this.feeds.clear()
  }

  private minAfter(feed: JobFeed): number {
    let min = Infinity
    for (const subscriber of feed.subscribers) if (subscriber.ready) min = Math.min(min, subscriber.after)
    return min
  }

  private requestRead(jobId: string, feed: JobFeed) {
    if (feed.reading) {
      feed.readAgain = true
      return
    }
    feed.reading = true
    void this.read(jobId, feed)
  }

  private async read(jobId: string, feed: JobFeed) {
    try {
      do {
        feed.readAgain = false
        if (feed.subscribers.size === 0 || this.closed) break
        const from = this.minAfter(feed)
        if (!Number.isFinite(from)) break
        let after = from
        for (;;) {
          const lines = await this.options.source.readLines(feed.postId, after, READ_PAGE)
          if (lines.length === 0) break
          after = lines[lines.length - 1]!.seq
          this.deliver(feed, lines)
          if (lines.length < READ_PAGE) break
        }
      } while (feed.readAgain)
    } catch (error) {
      this.options.logger.warn({ err: error, jobId }, 'Could not read new log lines of a job')
    } finally {
      feed.reading = false
      if (feed.subscribers.size === 0) this.feeds.delete(jobId)
    }
  }

  private deliver(feed: JobFeed, lines: JobLogLine[]) {
    const last = lines[lines.length - 1]!.seq
    if (last > feed.lastSeq) feed.lastSeq = last
    for (const subscriber of feed.subscribers) {
      // Until it knows where it starts, a subscription notes what went by (see subscribe()).
      const fresh = subscriber.ready ? lines.filter((line) => line.seq > subscriber.after) : lines.slice(-1)
      if (fresh.length === 0) continue
      if (subscriber.ready) subscriber.after = fresh[fresh.length - 1]!.seq
      for (const line of fresh) subscriber.buffer.push(line)
      if (subscriber.buffer.length > this.maxBufferedLines) subscriber.buffer.splice(0, subscriber.buffer.length - this.maxBufferedLines)
      if (subscriber.ready) this.pace(subscriber)
    }
  }

  /** Sends at once when the last message is older than intervalMs, else once it is. */
  private pace(subscriber: Subscriber) {
    if (subscriber.timer || subscriber.closed) return
    const wait = subscriber.lastSentAt + this.intervalMs - this.options.clock.now()
    if (wait <= 0) return this.sendNow(subscriber)
    subscriber.timer = setTimeout(() => {
      subscriber.timer = undefined
      this.sendNow(subscriber)
    }, wait)
    subscriber.timer.unref()
  }

  private sendNow(subscriber: Subscriber) {
    if (subscriber.closed || subscriber.buffer.length === 0) return
    const lines = subscriber.buffer
    subscriber.buffer = []
    subscriber.lastSentAt = this.options.clock.now()
    try {
      subscriber.send({ type: 'job_log', jobId: subscriber.jobId, lines })
    } catch (error) {
      this.options.logger.warn({ err: error }, 'Could not send log lines to a subscriber')
    }
  }
}
