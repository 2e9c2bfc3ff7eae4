import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { effectScope, type EffectScope } from 'vue'
import { createApiClient, type ApiClient } from '../../admin-ui/src/api/client'
import { useJobsSocket, type IncomingMessage, type JobsSocket, type JobsSocketOptions } from '../../admin-ui/src/composables/useJobsSocket'

/**
 * The origin happy-dom gives the page. The server under test allows it (CORS_ORIGINS), as it
 * would allow an admin UI served from another origin.
 */
export const PAGE_ORIGIN = 'http://localhost:3000'

/**
 * A TCP relay in front of the real server, so that a test can cut the network (every open
 * connection dropped, new ones refused) and bring it back, as a flaky Wi-Fi would.
 */
export async function startRelay(targetUrl: string) {
  const target = new URL(targetUrl)
  const sockets = new Set<net.Socket>()
  const frozen = new Set<net.Socket>()
  let refusing = false
  let connections = 0
  const server = net.createServer((client) => {
    connections += 1
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = net.connect(Number(target.port), target.hostname)
    sockets.add(client).add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    /** Connections accepted or refused so far. */
    get connections() {
      return connections
    },
    /** Keeps every open connection but forwards nothing more (a half-open connection); new ones work. */
    freeze() {
      for (const socket of sockets) {
        socket.unpipe()
        socket.pause()
        frozen.add(socket)
      }
      sockets.clear()
    },
    cut() {
      refusing = true
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    restore() {
      refusing = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of [...sockets, ...frozen]) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * The API client's fetch, made on Node's http module. happy-dom's fetch answers a GET from its
 * response cache when the response had an ETag and no expiry, without asking the server again
 * (browsers revalidate), so a test would see an old answer.
 */
const uncachedFetch: typeof fetch = (input, init) =>
  new Promise((resolve, reject) => {
    const url = new URL(String(input))
    const headers = Object.fromEntries(new Headers(init?.headers).entries())
    const req = http.request(url, { method: init?.method ?? 'GET', headers: { ...headers, Origin: PAGE_ORIGIN }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const responseHeaders = new Headers()
        for (const [key, value] of Object.entries(res.headers)) if (typeof value === 'string') responseHeaders.set(key, value)
        resolve(new Response(res.statusCode === 204 ? null : Buffer.concat(chunks), { status: res.statusCode, headers: responseHeaders }))
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    if (init?.body) req.write(String(init.body))
    req.end()
  })

/** The admin UI's own API client and socket, pointed at `baseUrl`, living in an effect scope. */
export function connectClient(options: { baseUrl: string; wsUrl: string; token: () => string } & Partial<JobsSocketOptions>) {
  const api: ApiClient = createApiClient({ baseUrl: options.baseUrl, getToken: options.token, fetch: uncachedFetch })
  const scope: EffectScope = effectScope()
  const socket: JobsSocket = scope.run(() =>
    useJobsSocket({
      getTicket: () => api.wsTicket(),
      url: options.wsUrl,
      backoff: options.backoff ?? { initialMs: 1000, maxMs: 8000 },
      // No jitter: the delays are exactly initialMs, 2×, 4×... (capped).
      random: options.random ?? (() => 1),
      onAuthFailure: options.onAuthFailure,
      // Off unless a test is about it: a ping's answer is real I/O, which fake time does not wait for.
      pingIntervalMs: options.pingIntervalMs ?? 0,
      pongTimeoutMs: options.pongTimeoutMs,
    }),
  )!
  return { api, socket, stop: () => scope.stop() }
}

/** Resolves with the next message from the socket that matches (real I/O: no timer involved). */
export function nextMessage(socket: Pick<JobsSocket, 'subscribe'>, predicate: (message: IncomingMessage) => boolean): Promise<IncomingMessage> {
  return new Promise((resolve) => {
    const off = socket.subscribe((message) => {
      if (!predicate(message)) return
      off()
      resolve(message)
    })
  })
}

export const isUpdateOf = (jobId: string, status?: string) => (message: IncomingMessage) =>
  message.type === 'job_update' && message.job.jobId === jobId && (status === undefined || message.job.status === status)
