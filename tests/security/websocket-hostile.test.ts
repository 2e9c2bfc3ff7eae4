import http from 'node:http'
import type { AddressInfo } from 'node:net'
import request from 'supertest'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../../core/createJobpost.js'
import { RealtimeServer } from '../../core/realtime/RealtimeServer.js'
import { connectWs, eventually, startJobpost, upgradeStatus, userWithRole, type TestUser } from '../support/harness.js'

type Started = Jobpost & { url: string }

/** Opens a raw client and resolves with it once open (or rejects with the refusal status). */
function open(url: string, headers: Record<string, string>, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...options })
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode }))
    })
    ws.once('error', reject)
  })
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve({ code: 1006, reason: '' })
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
}

describe('WebSocket: hostile clients', () => {
  let jobpost: Started
  let admin: TestUser
  let wsUrl: string
  const headers = () => ({ authorization: `Bearer ${admin.token}` })

  beforeAll(async () => {
    jobpost = await startJobpost()
    admin = await userWithRole(jobpost, 'administrator')
    wsUrl = `${jobpost.url.replace('http', 'ws')}/ws`
  })
  afterAll(() => jobpost.close())

  /** The server still serves REST and new sockets, and answers pings. */
  async function stillHealthy() {
    await request(jobpost.app).get('/api/v1/jobs').set(headers()).expect(200)
    const client = await connectWs(jobpost, { token: admin.token })
    client.ws.send(JSON.stringify({ type: 'ping' }))
    await client.next((m) => m.type === 'pong')
    await client.close()
  }

  it('a frame over maxPayload (4 KB) closes that socket with 1009; others are unaffected', async () => {
    const bystander = await connectWs(jobpost, { token: admin.token })
    const ws = await open(wsUrl, headers())
    const done = closed(ws)
    ws.on('error', () => undefined)
    ws.send('x'.repeat(5 * 1024))
    expect((await done).code).toBe(1009)
    const big = await open(wsUrl, headers())
    big.on('error', () => undefined)
    const bigDone = closed(big)
    big.send(Buffer.alloc(1024 * 1024, 1))
    expect((await bigDone).code).toBe(1009)
    bystander.ws.send(JSON.stringify({ type: 'ping' }))
    await bystander.next((m) => m.type === 'pong')
    await bystander.close()
    await stillHealthy()
  })

  it('junk, binary and unknown messages get an error reply and change nothing; the socket stays usable', async () => {
    const job = await jobpost.pluginHooks('ws').createJob({ name: 'Untouched', type: 'ws-junk' })
    const before = await jobpost.jobs.getJobRecord(job.jobId)
    const client = await connectWs(jobpost, { token: admin.token })
    const junk: (string | Buffer)[] = [
      'not json',
      '{"type":"ping"',
      '',
      'null',
      '[]',
      '"ping"',
      '{"type":"__proto__"}',
      '{"__proto__":{"type":"ping"}}',
      JSON.stringify({ type: 'cancel', jobId: job.jobId }),
      JSON.stringify({ type: 'subscribe', userId: 1, all: true }),
      '{"a":'.repeat(500) + '1' + '}'.repeat(500),
      Buffer.from([0xff, 0xfe, 0x00, 0x01]),
      '\u0000\uffff',
    ]
    for (const frame of junk) client.ws.send(frame)
    await eventually(() => client.messages.filter((m) => m.type === 'error').length === junk.length)
    expect(client.messages.filter((m) => m.type === 'error').every((m) => m.type === 'error' && m.error.code === 'VALIDATION_FAILED')).toBe(true)
    client.ws.send(JSON.stringify({ type: 'ping' }))
    await client.next((m) => m.type === 'pong')
    expect(client.ws.readyState).toBe(WebSocket.OPEN)
    expect(await jobpost.jobs.getJobRecord(job.jobId)).toEqual(before)
    expect(({} as Record<string, unknown>).type).toBeUndefined()
    await client.close()
  })

  it('a slow reader is dropped once its unsent bytes pass the limit; a normal reader gets everything', async () => {
    const healthy = await connectWs(jobpost, { token: admin.token })
    const slow = await open(wsUrl, headers())
    slow.on('error', () => undefined)
    await eventually(() => jobpost.realtime.clientCount === 2)
    // Stop reading: the TCP window fills, then the server's send buffer grows.
    ;(slow as unknown as { _socket: { pause(): void } })._socket.pause()
    const metadata = { padding: 'p'.repeat(60 * 1024) }
    let created = 0
    let lastJobId = ''
    const round = async (size: number) => {
      const batch = await jobpost.jobs.createJobs(Array.from({ length: size }, (_, i) => ({ name: `Bulk ${created + i}`, type: 'ws-bulk', metadata })))
      created += batch.length
      lastJobId = batch.at(-1)!.jobId
      // The healthy reader drains each round before the next.
      await healthy.next((m) => m.type === 'job_update' && m.job.jobId === lastJobId, 20_000)
    }
    // A 3 MB burst in one tick is more than maxBufferedBytes: a reader that drains it is not slow.
    await round(50)
    expect(jobpost.realtime.clientCount).toBe(2)
    // Up to ~120 MB more; the slow client must be dropped long before.
    for (let i = 0; i < 100 && jobpost.realtime.clientCount > 1; i++) await round(20)
    await eventually(() => jobpost.realtime.clientCount === 1, { timeoutMs: 10_000 })
    expect(created).toBeLessThan(2000)
    // The healthy reader got every update, the last one included.
    await healthy.next((m) => m.type === 'job_update' && m.job.jobId === lastJobId, 20_000)
    expect(healthy.messages.filter((m) => m.type === 'job_update' && m.job.type === 'ws-bulk')).toHaveLength(created)
    await healthy.close()
    slow.terminate()
    for (;;) {
      const ids = (await jobpost.jobs.getJobs({ type: 'ws-bulk', limit: 500 })).jobs.map((job) => job.id)
      if (ids.length === 0) break
      await jobpost.store.deletePosts(ids)
    }
    await stillHealthy()
  }, 60_000)

  it('a client that floods tiny messages and never reads its replies is dropped, not buffered without end', async () => {
    const flooder = await open(wsUrl, headers())
    flooder.on('error', () => undefined)
    await eventually(() => jobpost.realtime.clientCount === 1)
    ;(flooder as unknown as { _socket: { pause(): void } })._socket.pause()
    const gone = closed(flooder)
    // Each 1-byte junk frame earns a ~100-byte error reply: 400k frames would queue ~40 MB of replies.
    const frames = 400_000
    for (let i = 0; i < frames && jobpost.realtime.clientCount > 0; i++) {
      flooder.send('x')
      if (i % 5000 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await eventually(() => jobpost.realtime.clientCount === 0, { timeoutMs: 20_000 })
    const server = [...((jobpost.realtime as unknown as { clients: Set<{ socket: WebSocket }> }).clients)]
    expect(server).toHaveLength(0)
    flooder.terminate()
    await gone
    await stillHealthy()
  }, 60_000)

  it('1,000 sockets from one address (spoofed X-Forwarded-For): at most 50 are let in, the rest get 429, and the server stays up', async () => {
    const results: (WebSocket | number)[] = []
    for (let batch = 0; batch < 10; batch++) {
      // Each claims another address in X-Forwarded-For: the cap counts the real peer address.
      const attempts = Array.from({ length: 100 }, (_, i) =>
        open(wsUrl, { ...headers(), 'x-forwarded-for': `198.51.100.${(batch * 100 + i) % 250}` }).catch(
          (error: { status?: number }) => error.status ?? -1,
        ),
      )
      results.push(...(await Promise.all(attempts)))
    }
    const opened = results.filter((r): r is WebSocket => r instanceof WebSocket)
    const refusedStatuses = results.filter((r): r is number => typeof r === 'number')
    expect(opened).toHaveLength(50)
    expect(refusedStatuses).toHaveLength(950)
    expect(new Set(refusedStatuses)).toEqual(new Set([429]))
    expect(jobpost.realtime.clientCount).toBe(50)
    // REST still answers while the sockets are held.
    await request(jobpost.app).get('/api/v1/jobs/stats').set(headers()).expect(200)
    await Promise.all(opened.map((ws) => ((ws.close(), closed(ws)))))
    await eventually(() => jobpost.realtime.clientCount === 0)
    // The per-address count went back down: a new socket is let in.
    expect(await upgradeStatus(wsUrl, headers())).toBe(101)
    await stillHealthy()
  }, 60_000)

  it('half-open upgrades (a request that never finishes) do not block others', async () => {
    const net = await import('node:net')
    const port = (jobpost.server.address() as AddressInfo).port
    const sockets = await Promise.all(
      Array.from({ length: 20 }, () =>
        new Promise<import('node:net').Socket>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n')
            resolve(socket)
          })
          socket.on('error', () => undefined)
        }),
      ),
    )
    await stillHealthy()
    for (const socket of sockets) socket.destroy()
  })
})

describe('WebSocket heartbeat', () => {
  it('a peer that stops answering pings is terminated; a live one stays', async () => {
    const jobpost = await startJobpost({}, { listen: false })
    const server = http.createServer()
    const realtime = new RealtimeServer({ auth: jobpost.auth, logger: jobpost.logger, heartbeatMs: 100 })
    realtime.attach(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const user = await jobpost.auth.createUser({ email: 'hb@example.com', password: 'correct horse battery', roles: ['subscriber'] })
      const { token } = await jobpost.auth.login({ email: user.email, password: 'correct horse battery', address: 'test' })
      const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`
      const dead = await open(url, { authorization: `Bearer ${token}` }, { autoPong: false })
      const live = await open(url, { authorization: `Bearer ${token}` })
      const deadClosed = closed(dead)
      const { code } = await deadClosed
      expect(code).toBe(1006)
      await eventually(() => realtime.clientCount === 1)
      expect(live.readyState).toBe(WebSocket.OPEN)
      live.close()
      await closed(live)
    } finally {
      await realtime.close()
      await new Promise((resolve) => server.close(resolve))
      await jobpost.close()
    }
  })
})
