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
    // The SVG never enters the DOM as markup (the only <svg> would be one of ours: none here).
    expect(wrapper!.find('svg').exists()).toBe(false)
    expect(wrapper!.find('[aria-live="polite"]').exists()).toBe(true)
    // Every card can be closed, running ones too (they do not stay in the way).
    expect(backup.find('[data-test="dismiss"]').attributes('aria-label')).toBe('Dismiss Backup Database')
    expect(wrapper!.find('[data-test="stack-summary"]').text()).toBe('2 running')
  })

  it('moves the progress bar live and lets a completed card leave 5 s after it completes', async () => {
    await mountQueue()
    const job = await hooks().createJob({ name: 'Backup Database', type: 'backup', createdBy: admin.id })
    const second = await hooks().createJob({ name: 'Newer job', type: 'import', createdBy: admin.id })
    await job.start()
    await job.updateProgress(70)
    await vi.waitFor(() => expect(card(job.jobId).find('[data-test="percent"]').text()).toBe('70%'))
    await vi.waitFor(() => expect(cardIds()).toEqual([second.jobId, job.jobId]))
    expect(cardIds()).toEqual([second.jobId, job.jobId])

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const completed = nextMessage(client.socket, isUpdateOf(job.jobId, 'completed'))
    await job.complete({ ok: true })
    await completed
    // Updates are applied once per 100 ms tick.
    vi.advanceTimersByTime(100)
    await nextTick()
    expect(card(job.jobId).attributes('data-status')).toBe('completed')
    expect(card(job.jobId).find('[data-test="percent"]').text()).toBe('100%')

    vi.advanceTimersByTime(4850)
    await nextTick()
    expect(card(job.jobId).exists()).toBe(true)
    vi.advanceTimersByTime(200)
    await nextTick()
    expect(card(job.jobId).exists()).toBe(false)
    // The other card is untouched.
    expect(cardIds()).toEqual([second.jobId])
  })

  it('keeps a failed card with its error in red until it is dismissed; a retry brings it back', async () => {
    // A processor for the type, so that the job may be retried (no worker runs it here).
    hooks().registerJobProcessor('sync', async () => undefined)
    await mountQueue()
    const job = await hooks().createJob({ name: 'Sync Remote Data', type: 'sync', createdBy: admin.id })
    await job.start()
    // (No update left waiting on a real timer when the clock turns fake.)
    await vi.waitFor(() => expect(card(job.jobId).attributes('data-status')).toBe('running'))
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const failed = nextMessage(client.socket, isUpdateOf(job.jobId, 'failed'))
    await job.fail('API timeout: the remote server did not answer')
    await failed

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
    await jobpost.jobs.retry(job.jobId)
    await vi.waitFor(() => expect(card(job.jobId).attributes('data-status')).toBe('pending'))
  })

  it('groups a burst of one type into one card with counts, shows at most 5 cards and sums up the rest', async () => {
    await mountQueue()
    // Six single jobs of different types, then a burst of 120 of one type.
    const singles = []
    for (let i = 0; i < 6; i++) singles.push(await hooks().createJob({ name: `Single ${i}`, type: `single-${i}`, createdBy: admin.id }))
    const burst = []
    for (let i = 0; i < 120; i++) burst.push(await hooks().createJob({ name: 'Resize image', type: 'resize', createdBy: admin.id }))
    for (const job of burst.slice(0, 30)) await job.start()
    for (const job of burst.slice(0, 10)) await job.fail('not an image')

    const group = () => wrapper!.find('[data-test="group"][data-group="resize"]')
    await vi.waitFor(() => expect(group().attributes('data-count')).toBe('120'), { timeout: 5000 })
    await vi.waitFor(() => expect(group().find('[data-test="group-counts"]').text()).toBe('90 pending · 20 running · 10 failed'))
    expect(group().find('[data-test="group-title"]').text()).toBe('Resize image')
    // 5 cards (the group and the 4 newest singles) and a summary of the 2 others.
    expect(wrapper!.findAll('.job-queue__list > li')).toHaveLength(5)
    expect(wrapper!.find('[data-test="more"]').text()).toBe('2 more (2 jobs)')
    expect(wrapper!.findAll('.card').length).toBeLessThanOrEqual(10)

    // Expanded, the group shows its 3 newest jobs, and a way to all of them.
    await group().find('[data-test="group-toggle"]').trigger('click')
    expect(group().find('[data-test="group-toggle"]').attributes('aria-expanded')).toBe('true')
    expect(group().findAll('.card__members [data-job-id]')).toHaveLength(3)
    expect(group().find('.card__members-more').text()).toBe('All 120 in Jobs')
    expect(wrapper!.findAll('.card').length).toBeLessThanOrEqual(10)

    // "Clear 10 finished" closes the group's failed jobs.
    await group().find('[data-test="group-clear"]').trigger('click')
    await vi.waitFor(() => expect(group().attributes('data-count')).toBe('110'))
    expect(group().find('[data-test="group-counts"]').text()).toBe('90 pending · 20 running')
  })

  it('applies a burst of updates in a few renders, not one per message', async () => {
    const burst = []
    for (let i = 0; i < 40; i++) burst.push(await hooks().createJob({ name: `Import ${i}`, type: 'import', createdBy: admin.id }))
    await mountQueue()
    await vi.waitFor(() => expect(wrapper!.find('[data-group="import"]').attributes('data-count')).toBe('40'))
    let renders = 0
    const observer = new MutationObserver(() => (renders += 1))
    observer.observe(wrapper!.element, { subtree: true, childList: true, characterData: true, attributes: true })
    let messages = 0
    const off = client.socket.subscribe((m) => void (m.type === 'job_update' && (messages += 1)))
    for (const job of burst) await job.start()
    for (const job of burst) await job.updateProgress(50)
    await vi.waitFor(() => expect(wrapper!.find('[data-group="import"] [data-test="group-counts"]').text()).toBe('40 running'))
    await vi.waitFor(() => expect(wrapper!.find('[data-group="import"] [data-test="percent"]').text()).toBe('50%'))
    off()
    observer.disconnect()
    expect(messages).toBeGreaterThanOrEqual(80)
    // Mutation records are batched per microtask checkpoint: a render per message would give ≥ 80.
    expect(renders).toBeLessThan(messages / 4)
  })

  it('clears every finished card with one click, and marks cards stale while offline', async () => {
    await mountQueue()
    const done = await hooks().createJob({ name: 'Failed one', type: 'a', createdBy: admin.id })
    const cancelled = await hooks().createJob({ name: 'Cancelled one', type: 'b', createdBy: admin.id })
    const active = await hooks().createJob({ name: 'Still running', type: 'c', createdBy: admin.id })
    await done.start()
    await done.fail('boom')
    await cancelled.cancel()
    await active.start()
    await vi.waitFor(() => expect(wrapper!.find('[data-test="clear-finished"]').text()).toBe('Clear finished (2)'))
    await wrapper!.find('[data-test="clear-finished"]').trigger('click')
    expect(cardIds()).toEqual([active.jobId])
    expect(wrapper!.find('[data-test="clear-finished"]').exists()).toBe(false)

    relay.cut()
    await vi.waitFor(() => expect(card(active.jobId).attributes('data-stale')).toBe('true'))
    expect(card(active.jobId).find('[data-test="stale"]').text()).toBe('Offline: last known state')
    relay.restore()
    client.socket.reconnectNow()
    await vi.waitFor(() => expect(card(active.jobId).attributes('data-stale')).toBeUndefined(), { timeout: 5000 })
  })

  it('reconnects with growing backoff after the network drops, and refreshes the cards it missed', async () => {
    await mountQueue()
    const job = await hooks().createJob({ name: 'Backup Database', type: 'backup', createdBy: admin.id })
    const started = nextMessage(client.socket, isUpdateOf(job.jobId, 'running'))
    await job.start()
    await started
    await vi.waitFor(() => expect(card(job.jobId).attributes('data-status')).toBe('running'))

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
    // The stack re-reads the card it still shows as running, and learns that the job completed (the
    // clock moves on meanwhile: the server in this process shares the fake timers, and so does the
    // stack's 100 ms flush).
    await vi.waitUntil(
      () => {
        vi.advanceTimersByTime(20)
        return card(job.jobId).attributes('data-status') === 'completed'
      },
      { timeout: 5000, interval: 10 },
    )
    expect(client.socket.state.value).toBe('open')
    vi.advanceTimersByTime(5200)
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
    vi.advanceTimersByTime(100)
    await nextTick()

    // The network silently stops carrying this connection: no close event ever comes.
    relay.freeze()
    await job.fail('disk full')
    // (100 ms of the ping's wait went by with the first flush.)
    vi.advanceTimersByTime(25_000 + 9_999 - 100)
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
