/** Progress fan-out: one job, ~1,000 progress updates a second, 200 WebSocket clients in a child process. */
import { spawn, type ChildProcess } from 'node:child_process'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { adminSession, openServer } from './http.js'
import { median, percentile, QUICK, report, sleep, tempDir } from './lib.js'

export async function benchFanout() {
  const clients = 200
  const seconds = QUICK ? 2 : 5
  const dir = tempDir('fanout')
  const jobpost = await openServer({ dialect: 'sqlite', filename: dir.file('jobpost.sqlite') })
  let child: ChildProcess | undefined
  try {
    const { token } = await adminSession(jobpost)
    const hooks = jobpost.pluginHooks('bench')
    const handle = await hooks.createJob({ name: 'Fan-out', type: 'bench-progress' })
    // The clients live in another process, as they would: their parsing does not slow the server.
    child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./wsClients.ts', import.meta.url))], {
      env: { ...process.env, WS_URL: `${jobpost.url.replace('http', 'ws')}/ws`, WS_TOKEN: token, WS_JOB_ID: handle.jobId, WS_CLIENTS: String(clients) },
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const nextLine = async () => String((await lines.next()).value ?? '')
    if ((await nextLine()) !== 'READY') throw new Error('The WebSocket clients did not connect')
    await handle.start()
    child.stdin!.write('START\n')
    const now = () => performance.timeOrigin + performance.now()
    let updates = 0
    const from = performance.now()
    while (performance.now() < from + seconds * 1000) {
      const due = from + updates // one update per ms
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      await handle.updateProgress(updates % 100, { t: now() })
      updates++
      // A real processor yields on its own I/O; without a turn of the loop no coalesced send would fire.
      await new Promise((resolve) => setImmediate(resolve))
    }
    const elapsed = (performance.now() - from) / 1000
    await sleep(300) // the last coalesced update
    child.stdin!.write('STOP\n')
    const { received, latencies } = JSON.parse(await nextLine()) as { received: number[]; latencies: number[] }
    await handle.complete()
    const perClient = median(received) / elapsed
    const p99 = percentile(latencies, 99)
    report({
      id: 'fanout.rate',
      label: `WS job_update per client per s (${clients} clients, ${Math.round(updates / elapsed)} updates/s)`,
      value: perClient,
      unit: 'msg/s',
      target: '≤ 10 per job per client',
      met: perClient <= 10.5,
      note: `${updates} updates in ${elapsed.toFixed(1)} s`,
    })
    report({
      id: 'fanout.p99',
      label: 'progress update → WS receipt p99',
      value: p99,
      unit: 'ms',
      baselines: { p50: percentile(latencies, 50) },
      target: '≤ 50 ms',
      met: p99 <= 50,
    })
  } finally {
    child?.kill()
    await jobpost.close()
    dir.remove()
  }
}
