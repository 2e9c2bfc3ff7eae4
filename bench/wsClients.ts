/**
 * Child process of the fan-out bench: opens WS_CLIENTS WebSocket clients to WS_URL (spread over
 * loopback addresses, at most 40 per address), counts the `job_update` messages of job WS_JOB_ID
 * that carry a send time in `metadata.t` (epoch ms, high resolution) and records update→receipt.
 * Prints READY when connected; on a line `STOP` on stdin prints one JSON line of results and exits.
 */
import readline from 'node:readline'
import WebSocket from 'ws'

const url = process.env.WS_URL!
const token = process.env.WS_TOKEN!
const jobId = process.env.WS_JOB_ID!
const count = Number(process.env.WS_CLIENTS ?? 200)
const now = () => performance.timeOrigin + performance.now()

const received = new Array<number>(count).fill(0)
const latencies: number[] = []
let counting = false
const sockets: WebSocket[] = []

for (let i = 0; i < count; i++) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, localAddress: `127.0.0.${2 + Math.floor(i / 40)}` })
  ws.on('message', (raw) => {
    if (!counting) return
    const message = JSON.parse(raw.toString()) as { type: string; job?: { jobId: string; status: string; metadata: { t?: number } } }
    if (message.type !== 'job_update' || message.job?.jobId !== jobId || message.job.status !== 'running') return
    const sentAt = message.job.metadata.t
    if (typeof sentAt !== 'number') return
    received[i]!++
    latencies.push(now() - sentAt)
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  sockets.push(ws)
}
process.stdout.write('READY\n')

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line === 'START') counting = true
  if (line === 'STOP') {
    counting = false
    process.stdout.write(`${JSON.stringify({ received, latencies })}\n`)
    for (const ws of sockets) ws.terminate()
    process.exit(0)
  }
}
