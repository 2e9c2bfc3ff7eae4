import { toPublicJob, type JobRecord } from '../registry/jobRecord.js'
import type { RegisterJobs } from '../registry/RegisterJobs.js'
import type { BatchEngine, BatchItem } from './batches.js'

/**
 * GET /api/v1/jobs/:jobId/export: a job with every item and its result and error. A batch exports
 * its items; a chain (or any parent) exports its child jobs as items; other jobs export no items.
 *
 * CSV (RFC 4180): columns `index,id,status,attempts,error,result,startedAt,finishedAt`; `result`
 * is JSON text; empty cells mean null. Cells with a quote, comma, CR or LF are quoted with quotes
 * doubled; a cell that would start with = + - @ TAB or CR gets a leading `'` so spreadsheets do
 * not run it as a formula (strip that one quote when reading the file back as data).
 */

export interface ExportedItem {
  index: number
  id: string | number
  status: string
  attempts: number
  error: string | null
  result: unknown
  startedAt: string | null
  finishedAt: string | null
}

export const CSV_COLUMNS = ['index', 'id', 'status', 'attempts', 'error', 'result', 'startedAt', 'finishedAt'] as const
const MAX_CHILDREN = 500

export async function exportJob(
  options: { jobs: RegisterJobs; batches: BatchEngine },
  record: JobRecord,
  format: 'csv' | 'json',
): Promise<{ body: string; contentType: string }> {
  const items = await exportedItems(options, record)
  if (format === 'json') {
    return { body: JSON.stringify({ job: { ...toPublicJob(record), data: record.data }, items }, null, 2), contentType: 'application/json' }
  }
  return { body: toCsv(items), contentType: 'text/csv' }
}

async function exportedItems(options: { jobs: RegisterJobs; batches: BatchEngine }, record: JobRecord): Promise<ExportedItem[]> {
  const batchItems: BatchItem[] = await options.batches.listItems(record.jobId)
  if (batchItems.length > 0) return batchItems
  const children = await options.jobs.getJobs({ parentJobId: record.jobId, limit: MAX_CHILDREN })
  return children.jobs.reverse().map((child, index) => ({
    index,
    id: child.jobId,
    status: child.status,
    attempts: child.attempts,
    error: child.errorMessage,
    result: child.result,
    startedAt: child.startedAt,
    finishedAt: child.completedAt,
  }))
}

export function toCsv(items: ExportedItem[]): string {
  const rows = [CSV_COLUMNS.join(',')]
  for (const item of items) {
    rows.push(
      [
        String(item.index),
        String(item.id),
        item.status,
        String(item.attempts),
        item.error ?? '',
        item.result === null || item.result === undefined ? '' : JSON.stringify(item.result),
        item.startedAt ?? '',
        item.finishedAt ?? '',
      ]
        .map(csvCell)
        .join(','),
    )
  }
  return rows.join('\r\n') + '\r\n'
}

/** One CSV cell: formula triggers neutralised, then quoted when needed. */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}
