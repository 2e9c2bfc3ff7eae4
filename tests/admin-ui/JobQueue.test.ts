import { mount, type VueWrapper } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'
import JobQueue from '../../admin-ui/src/components/JobQueue.vue'
import type { Jobpost } from '../../core/createJobpost'
import { startJobpost, userWithRole, type TestUser } from '../support/harness'
import { PAGE_ORIGIN, connectClient, isUpdateOf, nextMessage, startRelay } from './support'

const ICON = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 24 24"><circle cx="12" cy="12" r="9"/></svg>'

let jobpost: Jobpost & { url: string }
let admin: TestUser
let relay: Awaited<ReturnType<typeof startRelay>>
let client: ReturnType<typeof connectClient>
let wrapper: VueWrapper | undefined

beforeEach(async () => {
  jobpost = await startJobpost({ corsOrigins: [PAGE_ORIGIN] })
  admin = await userWithRole(jobpost, 'administrator')
  relay = await startRelay(jobpost.url)
})

afterEach(async () => {
  vi.useRealTimers()
  wrapper?.unmount()
  wrapper = undefined
  client?.stop()
  await relay.close()
  await jobpost.close()
})

/** Mounts the stack on the admin UI's own client, through the relay, and waits until it is live. */
async function mountQueue(options: { onAuthFailure?: () => void; pingIntervalMs?: number; pongTimeoutMs?: number } = {}) {
  client = connectClient({ baseUrl: relay.url, wsUrl: relay.wsUrl, token: () => admin.token, ...options })
  wrapper = mount(JobQueue, { props: { api: client.api, socket: client.socket }, attachTo: document.body })
  await vi.waitFor(() => expect(client.socket.state.value).toBe('open'))
  return wrapper
}

function hooks() {
  return jobpost.pluginHooks('backup-plugin')
}

const card = (jobId: string) => wrapper!.find(`[data-job-id="${jobId}"]`)
const cardIds = () => wrapper!.findAll('[data-job-id]').map((c) => c.attributes('data-job-id'))

describe('JobQueue.vue, the notification stack, on a real server', () => {
  it('shows jobs already running when it opens, newest on top, with the icon only as a data: image', async () => {
    const older = await hooks().createJob({ name: 'Older import', type: 'import', createdBy: admin.id })
    await older.start()
    const running = await hooks().createJob({
      name: 'Backup Database',
      description: 'Creating a full database backup',
      type: 'backup',
      iconSvg: ICON,
      createdBy: admin.id,
    })
    await running.start()
    await running.updateProgress(40)
    const silent = await hooks().createJob({ name: 'Quiet job', type: 'quiet', showNotification: false, createdBy: admin.id })
    await silent.start()

    await mountQueue()
    await vi.waitFor(() => expect(cardIds()).toEqual([running.jobId, older.jobId]))

    const backup = card(running.jobId)
    expect(backup.find('[data-test="name"]').text()).toBe('Backup Database')
    expect(backup.find('[data-test="description"]').text()).toBe('Creating a full database backup')
    expect(backup.find('[data-test="status"]').text()).toBe('Running')
    expect(backup.find('[data-test="percent"]').text()).toBe('40%')
    expect(backup.find('[role="progressbar"]').attributes('aria-valuenow')).toBe('40')
    const src = backup.find('img').attributes('src')!
    expect(src.startsWith('data:image/svg+xml;base64,')).toBe(true)
    const served = (await jobpost.pluginHooks('t').getJob(running.jobId))!.iconSvg!
    expect(Buffer.from(src.slice('data:image/svg+xml;base64,'.length), 'base64').toString('utf8')).toBe(served)
    // The SVG never enters the DOM as markup.
    expect(wrapper!.find('svg').exists()).toBe(false)
    expect(wrapper!.find('[aria-live="polite"]').exists()).toBe(true)
    // Running jobs cannot be dismissed.
    expect(backup.find('[data-test="dismiss"]').exists()).toBe(false)
  })

  it('moves the progress bar live and lets a completed card leave after exactly 5 s', async () => {
    await mountQueue()
    const job = await hooks().createJob({ name: 'Backup Database', type: 'backup', createdBy: admin.id })
    const second = await hooks().createJob({ name: 'Newer job', type: 'import', createdBy: admin.id })
    await job.start()
    const progressed = nextMessage(client.socket, (m) => isUpdateOf(job.jobId)(m) && m.type === 'job_update' && m.job.progress === 70)
    await job.updateProgress(70)
    await progressed
    await nextTick()
    expect(cardIds()).toEqual([second.jobId, job.jobId])
    expect(card(job.jobId).find('[data-test="percent"]').text()).toBe('70%')

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const completed = nextMessage(client.socket, isUpdateOf(job.jobId, 'completed'))
    await job.complete({ ok: true })
    await completed
    await nextTick()
    expect(card(job.jobId).attributes('data-status')).toBe('completed')
    expect(card(job.jobId).find('[data-test="percent"]').text()).toBe('100%')

    vi.advanceTimersByTime(4999)
    await nextTick()
    expect(card(job.jobId).exists()).toBe(true)
    vi.advanceTimersByTime(1)
    await nextTick()
    expect(card(job.jobId).exists()).toBe(false)
    // The other card is untouched.
    expect(cardIds()).toEqual([second.jobId])
  })

  it('keeps a failed card with its error in red until it is dismissed; a retry brings it back', async () => {
    await mountQueue()
    const job = await hooks().createJob({ name: 'Sync Remote Data', type: 'sync', createdBy: admin.id })
    await job.start()
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const failed = nextMessage(client.socket, isUpdateOf(job.jobId, 'failed'))
    await job.fail('API timeout: the remote server did not answer')
    await failed
    await nextTick()

    vi.advanceTimersByTime(60_000)
    await nextTick()
    const error = card(job.jobId).find('[data-test="error"]')
    expect(error.text()).toBe('API timeout: the remote server did not answer')
    expect(error.classes()).toContain('card__error')
    expect(card(job.jobId).find('[data-test="status"]').text()).toBe('Failed')

    const dismiss = card(job.jobId).find('[data-test="dismiss"]')
    expect(dismiss.attributes('aria-label')).toBe('Dismiss Sync Remote Data')
    await dismiss.trigger('click')
    expect(card(job.jobId).exists()).toBe(false)

    // Retrying makes it active again: then it is back on the stack.
    vi.useRealTimers()
    const retried = nextMessage(client.socket, isUpdateOf(job.jobId, 'pending'))
    await jobpost.jobs.retry(job.jobId)
    await retried
    await nextTick()
    expect(card(job.jobId).attributes('data-status')).toBe('pending')
  })

  it('reconnects with growing backoff after the network drops, and refreshes the cards it missed', async () => {
    await mountQueue()
    const job = await hooks().createJob({ name: 'Backup Database', type: 'backup', createdBy: admin.id })
    const started = nextMessage(client.socket, isUpdateOf(job.jobId, 'running'))
    await job.start()
    await started
    await nextTick()
    expect(card(job.jobId).attributes('data-status')).toBe('running')

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    relay.cut()
    await vi.waitUntil(() => client.socket.state.value === 'reconnecting' && client.socket.retryInMs.value !== null, {
      timeout: 5000,
      interval: 0,
    })
    expect(client.socket.retryInMs.value).toBe(1000)

    // While the network is down the job finishes: the stack never hears of it.
    await job.complete({ ok: true })
    const before = relay.connections
    vi.advanceTimersByTime(999)
    expect(relay.connections).toBe(before)
    vi.advanceTimersByTime(1)
    // The ticket request is refused by the network: the next wait doubles.
    await vi.waitUntil(() => relay.connections > before && client.socket.retryInMs.value === 2000, { timeout: 5000, interval: 0 })
    expect(card(job.jobId).attributes('data-status')).toBe('running')

    relay.restore()
    const reconnected = nextMessage(client.socket, (m) => m.type === 'connected')
    vi.advanceTimersByTime(2000)
    await reconnected
    // The stack re-reads the card it still shows as running, and learns that the job completed.
    await vi.waitUntil(() => card(job.jobId).attributes('data-status') === 'completed', { timeout: 5000, interval: 0 })
    expect(client.socket.state.value).toBe('open')
    vi.advanceTimersByTime(5000)
    await nextTick()
    expect(card(job.jobId).exists()).toBe(false)
  })

  it('gives up a half-open connection when a ping goes unanswered, and reconnects', async () => {
    await mountQueue({ pingIntervalMs: 25_000, pongTimeoutMs: 10_000 })
    const job = await hooks().createJob({ name: 'Backup Database', type: 'backup', createdBy: admin.id })
    // From here the clock is fake; the last message (the job starting) arms the ping on it.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const started = nextMessage(client.socket, isUpdateOf(job.jobId, 'running'))
    await job.start()
    await started
    await nextTick()

    // The network silently stops carrying this connection: no close event ever comes.
    relay.freeze()
    await job.fail('disk full')
    vi.advanceTimersByTime(25_000 + 9_999)
    expect(client.socket.state.value).toBe('open')
    vi.advanceTimersByTime(1)
    expect(client.socket.state.value).toBe('reconnecting')
    expect(client.socket.retryInMs.value).toBe(1000)

    const reconnected = nextMessage(client.socket, (m) => m.type === 'connected')
    vi.advanceTimersByTime(1000)
    await reconnected
    await vi.waitUntil(() => card(job.jobId).attributes('data-status') === 'failed', { timeout: 5000, interval: 0 })
    expect(card(job.jobId).find('[data-test="error"]').text()).toBe('disk full')
  })

  it('does not reconnect after an auth failure: it stops and reports it', async () => {
    const onAuthFailure = vi.fn()
    await mountQueue({ onAuthFailure })
    // The session is revoked elsewhere (another tab signed out), then the connection drops.
    await fetch(`${jobpost.url}/api/v1/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin.token}`, 'Content-Type': 'application/json' },
      body: '{}',
    })
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    relay.cut()
    relay.restore()
    await vi.waitUntil(() => client.socket.state.value === 'reconnecting' && client.socket.retryInMs.value !== null, {
      timeout: 5000,
      interval: 0,
    })
    vi.advanceTimersByTime(1000)
    await vi.waitUntil(() => client.socket.state.value === 'stopped', { timeout: 5000, interval: 0 })
    expect(onAuthFailure).toHaveBeenCalledTimes(1)
    const after = relay.connections
    vi.advanceTimersByTime(120_000)
    expect(relay.connections).toBe(after)
    expect(client.socket.state.value).toBe('stopped')
  })
})
