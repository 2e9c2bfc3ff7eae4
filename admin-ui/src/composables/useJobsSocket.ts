import { getCurrentScope, inject, onScopeDispose, readonly, shallowRef, type InjectionKey } from 'vue'
import { ApiRequestError } from '../api/client'
import type { ClientMessage, JobLogMessage, LogSubscriptionMessage, ServerMessage } from '../contract'

/** What the socket delivers: the contract's server messages, and log lines of subscribed jobs. */
export type IncomingMessage = ServerMessage | JobLogMessage

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'stopped'

export interface JobsSocketOptions {
  /** A fresh single-use ticket from POST /api/v1/auth/ws-ticket; a 401 there ends the session. */
  getTicket: () => Promise<string>
  /** ws:// or wss:// URL of the endpoint (default: /ws on the page's own origin). */
  url?: string
  /** WebSocket constructor (default: the browser's). */
  WebSocket?: typeof WebSocket
  /** Called when the credentials are refused: no more reconnects (the app goes to login). */
  onAuthFailure?: () => void
  /** Reconnect delays: initialMs (default 500), doubled per failed try, at most maxMs (default 4000), with jitter. */
  backoff?: { initialMs?: number; maxMs?: number }
  /** [0, 1): jitter source (tests pass a constant). */
  random?: () => number
  /**
   * After this long without any message, send {"type":"ping"} (default 25 s; 0 = never). A
   * half-open connection (a laptop that slept, a proxy that dropped it) fires no close event.
   */
  pingIntervalMs?: number
  /** With no answer to a ping after this long, the connection is given up and remade (default 10 s). */
  pongTimeoutMs?: number
}

export interface ConnectedEvent {
  /** false on the first connection, true after a reconnect. */
  reconnect: boolean
}

export interface JobsSocket {
  state: Readonly<import('vue').Ref<SocketState>>
  /** Delay of the next reconnect, while `state` is 'reconnecting'. */
  retryInMs: Readonly<import('vue').Ref<number | null>>
  /** Every server message, and `connected` (with whether it is a reconnect). Returns an unsubscribe. */
  subscribe(listener: (message: IncomingMessage, event?: ConnectedEvent) => void): () => void
  /**
   * Live log lines of one job (`subscribe_logs`), re-subscribed after every reconnect; the returned
   * function unsubscribes. Lines arrive through `subscribe` as `job_log` messages.
   */
  followLogs(jobId: string): () => void
  /** Skips the wait of a pending reconnect. */
  reconnectNow(): void
  stop(): void
}

export const JOBS_SOCKET_KEY: InjectionKey<JobsSocket> = Symbol('jobpost.jobsSocket')

/** `retryInMs` for try number `attempt` (1-based): equal jitter on an exponential, capped. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + (ceiling / 2) * random())
}

function defaultUrl(): string {
  const { protocol, host } = globalThis.location
  return `${protocol === 'https:' ? 'wss:' : 'ws:'}//${host}/ws`
}

/**
 * One WebSocket to /ws, authenticated by a ticket per connection. Reconnects with backoff when the
 * connection drops or cannot be made, but never after an auth failure (the ticket request answered
 * 401): then it stops and calls `onAuthFailure`. Stops itself when the calling scope is disposed.
 */
export function useJobsSocket(options: JobsSocketOptions): JobsSocket {
  // Capped at a few seconds: the UI is back within moments of the server.
  const initialMs = options.backoff?.initialMs ?? 500
  const maxMs = options.backoff?.maxMs ?? 4000
  const random = options.random ?? Math.random
  const Socket = options.WebSocket ?? globalThis.WebSocket
  const state = shallowRef<SocketState>('connecting')
  const retryInMs = shallowRef<number | null>(null)
  const listeners = new Set<(message: IncomingMessage, event?: ConnectedEvent) => void>()
  /** Jobs whose log lines are followed, with how many followers each. */
  const logFollowers = new Map<string, number>()
  const pingIntervalMs = options.pingIntervalMs ?? 25_000
  const pongTimeoutMs = options.pongTimeoutMs ?? 10_000
  let socket: WebSocket | null = null
  let timer: ReturnType<typeof setTimeout> | undefined
  let pingTimer: ReturnType<typeof setTimeout> | undefined
  let pongTimer: ReturnType<typeof setTimeout> | undefined
  let failures = 0
  let everConnected = false
  let stopped = false
  /** Bumped on each connection attempt, so that late callbacks of an old one are ignored. */
  let generation = 0

  function send(message: ClientMessage | LogSubscriptionMessage) {
    if (!socket || socket.readyState !== 1) return
    try {
      socket.send(JSON.stringify(message))
    } catch {
      // A failed send is followed by close, and the subscription is renewed on reconnect.
    }
  }

  function emit(message: IncomingMessage, event?: ConnectedEvent) {
    for (const listener of [...listeners]) {
      try {
        listener(message, event)
      } catch (error) {
        console.error('A jobs socket listener threw', error)
      }
    }
  }

  function clearLiveness() {
    clearTimeout(pingTimer)
    clearTimeout(pongTimer)
    pingTimer = pongTimer = undefined
  }

  /** Any message proves the connection alive: wait again before the next ping. */
  function armPing(ws: WebSocket) {
    clearLiveness()
    if (pingIntervalMs <= 0) return
    pingTimer = setTimeout(() => {
      pingTimer = undefined
      try {
        ws.send(JSON.stringify({ type: 'ping' } satisfies ClientMessage))
      } catch {
        // A failed send is followed by close.
      }
      pongTimer = setTimeout(() => {
        pongTimer = undefined
        // No answer: abandon this connection without waiting for a close that may never come.
        generation += 1
        socket = null
        ws.close()
        scheduleReconnect()
      }, pongTimeoutMs)
    }, pingIntervalMs)
  }

  function scheduleReconnect() {
    clearLiveness()
    if (stopped) return
    failures += 1
    const delay = backoffDelay(failures, initialMs, maxMs, random)
    state.value = 'reconnecting'
    retryInMs.value = delay
    clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      void connect()
    }, delay)
  }

  async function connect() {
    if (stopped) return
    const attempt = ++generation
    state.value = everConnected ? 'reconnecting' : 'connecting'
    retryInMs.value = null
    let ticket: string
    try {
      ticket = await options.getTicket()
    } catch (error) {
      if (attempt !== generation || stopped) return
      if (error instanceof ApiRequestError && error.isAuthFailure) {
        stop()
        options.onAuthFailure?.()
        return
      }
      scheduleReconnect()
      return
    }
    if (attempt !== generation || stopped) return
    const ws = new Socket(`${options.url ?? defaultUrl()}?ticket=${encodeURIComponent(ticket)}`)
    socket = ws
    ws.onmessage = (event: MessageEvent) => {
      if (attempt !== generation) return
      armPing(ws)
      let message: IncomingMessage
      try {
        message = JSON.parse(String(event.data)) as IncomingMessage
      } catch {
        return
      }
      if (message.type === 'connected') {
        const reconnect = everConnected
        everConnected = true
        failures = 0
        state.value = 'open'
        for (const jobId of logFollowers.keys()) send({ type: 'subscribe_logs', jobId })
        emit(message, { reconnect })
        return
      }
      emit(message)
    }
    ws.onclose = () => {
      if (attempt !== generation) return
      socket = null
      scheduleReconnect()
    }
    // An error is followed by close; nothing to do here but keep it from being unhandled.
    ws.onerror = () => undefined
  }

  function stop() {
    globalThis.removeEventListener?.('online', onOnline)
    globalThis.removeEventListener?.('offline', onOffline)
    stopped = true
    generation += 1
    clearLiveness()
    clearTimeout(timer)
    timer = undefined
    state.value = 'stopped'
    retryInMs.value = null
    const current = socket
    socket = null
    if (current && current.readyState <= 1) current.close(1000, 'Client closed')
  }

  function reconnectNow() {
    if (stopped || state.value !== 'reconnecting' || timer === undefined) return
    clearTimeout(timer)
    timer = undefined
    void connect()
  }

  // Back online: no need to sit out the rest of the backoff.
  const onOnline = () => reconnectNow()
  globalThis.addEventListener?.('online', onOnline)
  // Gone offline: the connection may linger half-open; give it up now, so that the page says so.
  const onOffline = () => {
    if (stopped || !socket) return
    const current = socket
    generation += 1
    socket = null
    current.close()
    scheduleReconnect()
  }
  globalThis.addEventListener?.('offline', onOffline)

  function followLogs(jobId: string) {
    const count = logFollowers.get(jobId) ?? 0
    logFollowers.set(jobId, count + 1)
    if (count === 0) send({ type: 'subscribe_logs', jobId })
    let done = false
    return () => {
      if (done) return
      done = true
      const left = (logFollowers.get(jobId) ?? 1) - 1
      if (left > 0) return void logFollowers.set(jobId, left)
      logFollowers.delete(jobId)
      send({ type: 'unsubscribe_logs', jobId })
    }
  }

  if (getCurrentScope()) onScopeDispose(stop)
  void connect()

  return {
    state: readonly(state),
    retryInMs: readonly(retryInMs),
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    reconnectNow,
    followLogs,
    stop,
  }
}

/** The shell's socket, for components below it. */
export function injectJobsSocket(): JobsSocket {
  const socket = inject(JOBS_SOCKET_KEY, null)
  if (!socket) throw new Error('No jobs socket provided (JOBS_SOCKET_KEY)')
  return socket
}
