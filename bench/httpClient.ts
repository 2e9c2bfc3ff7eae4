/**
 * Child process of the admin bench: the HTTP client, kept out of the server's process so that the
 * server's event-loop delay is the server's own. Reads one JSON request per stdin line:
 *   {"id", "url", "method"?, "token", "repeat", "parallel"?, "warm"?}
 * runs `warm` unmeasured calls, then `repeat` rounds of `parallel` concurrent calls, and prints
 *   {"id", "samples": [ms per call], "status": last status, "total": meta.total or data.deleted, "bytes"}
 */
import readline from 'node:readline'

interface Request {
  id: string
  url: string
  method?: string
  token: string
  repeat: number
  parallel?: number
  warm?: number
}

async function call(request: Request): Promise<{ ms: number; status: number; total: unknown; bytes: number }> {
  const start = performance.now()
  const res = await fetch(request.url, { method: request.method ?? 'GET', headers: { authorization: `Bearer ${request.token}` } })
  const text = await res.text()
  const ms = performance.now() - start
  let total: unknown = null
  try {
    const body = JSON.parse(text) as { meta?: { total?: number; totalCapped?: boolean }; data?: { deleted?: number; byStatus?: unknown } }
    total = body.meta?.total ?? body.data?.deleted ?? (body.data?.byStatus ? 'stats' : null)
    if (body.meta?.totalCapped) total = `${total}+`
  } catch {
    total = text.slice(0, 200)
  }
  return { ms, status: res.status, total, bytes: text.length }
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  const request = JSON.parse(line) as Request
  for (let i = 0; i < (request.warm ?? 0); i++) await call(request)
  const samples: number[] = []
  let last = { status: 0, total: null as unknown, bytes: 0 }
  for (let round = 0; round < request.repeat; round++) {
    const results = await Promise.all(Array.from({ length: request.parallel ?? 1 }, () => call(request)))
    for (const result of results) samples.push(result.ms)
    last = results[results.length - 1]!
  }
  process.stdout.write(`${JSON.stringify({ id: request.id, samples, status: last.status, total: last.total, bytes: last.bytes })}\n`)
}
