/** The PostgreSQL NOTIFY channel on which instances announce new log lines. */
export const LOG_CHANNEL = 'jobpost_logs'

/** NOTIFY payloads stay under PostgreSQL's 8000 bytes. */
const MAX_PAYLOAD_BYTES = 7500

/** Wire format: `{"s": sender, "l": [[jobId, lastSeq], ...]}`: receivers read lines after their own last seq. */
export function encodeLogNotice(sender: string, lastSeqs: Map<string, number>): string[] {
  const payloads: string[] = []
  let batch: [string, number][] = []
  let size = sender.length + 20
  for (const [jobId, seq] of lastSeqs) {
    const entrySize = jobId.length + String(seq).length + 6
    if (batch.length && size + entrySize > MAX_PAYLOAD_BYTES) {
      payloads.push(JSON.stringify({ s: sender, l: batch }))
      batch = []
      size = sender.length + 20
    }
    batch.push([jobId, seq])
    size += entrySize
  }
  if (batch.length) payloads.push(JSON.stringify({ s: sender, l: batch }))
  return payloads
}

/** The (jobId, lastSeq) pairs of another instance's payload; ours and malformed ones give none. */
export function decodeLogNotice(text: string, self: string): [string, number][] {
  let payload: { s?: unknown; l?: unknown }
  try {
    payload = JSON.parse(text)
  } catch {
    return []
  }
  if (!payload || payload.s === self || !Array.isArray(payload.l)) return []
  const out: [string, number][] = []
  for (const entry of payload.l) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || entry[0].length > 64 || typeof entry[1] !== 'number') continue
    out.push([entry[0], entry[1]])
  }
  return out
}
