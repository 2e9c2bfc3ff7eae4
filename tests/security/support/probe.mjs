// A user in another process (so that the load a test generates cannot delay the measurement):
// sends GET /api/v1/auth/me one at a time, every EVERY_MS, until the parent says "stop"; then
// replies with every answer's latency (ms) and any non-200 answer.
const [url, token, everyMs = '25'] = process.argv.slice(2)
const latencies = []
const failures = []
let running = true
process.on('message', (message) => {
  if (message === 'stop') running = false
})
// One untimed request first: the probe's own cold start (connection, fetch's first use) is not the server's.
await fetch(`${url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } }).then((res) => res.text())
process.send?.('ready')
while (running) {
  const started = performance.now()
  try {
    const res = await fetch(`${url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })
    const text = await res.text()
    if (res.status === 200) latencies.push(performance.now() - started)
    else failures.push(`${res.status} ${text.slice(0, 200)}`)
  } catch (error) {
    failures.push(String(error))
  }
  await new Promise((resolve) => setTimeout(resolve, Number(everyMs)))
}
process.send?.({ latencies, failures }, () => process.exit(0))
