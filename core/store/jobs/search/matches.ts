import type { SearchMatch } from '../../../contract.js'
import { numericValue, searchWords, type DataFilter } from './query.js'

/**
 * Where a job matched a search, for the admin's highlighting: the same words as the index
 * (letters and digits, each search word a prefix of a word of the text, case-insensitive), found
 * in the job's name, description, error message and the values of its data and result; and the
 * value of each `data.<path>` filter. Runs on the page only (≤ 500 jobs), never on the table.
 */

const MAX_MATCHES = 5
const WINDOW = 160
const WORD = /[\p{L}\p{N}]+/gu

interface Searchable {
  name: string
  description: string
  errorMessage: string | null
  data: unknown
  result: unknown
}

/** [start, end) of the words of `text` that one of `words` is a prefix of. */
export function wordRanges(text: string, words: readonly string[]): [number, number][] {
  const ranges: [number, number][] = []
  if (words.length === 0) return ranges
  for (const hit of text.normalize('NFC').matchAll(WORD)) {
    const lower = hit[0].toLowerCase()
    if (words.some((word) => lower.startsWith(word))) ranges.push([hit.index, hit.index + hit[0].length])
  }
  return ranges
}

/** The text cut to WINDOW characters around its first range, ranges moved along. */
function around(text: string, ranges: [number, number][]): Pick<SearchMatch, 'text' | 'ranges'> {
  if (text.length <= WINDOW) return { text, ranges }
  const start = Math.max(0, Math.min(ranges[0]?.[0] ?? 0, text.length - WINDOW) - 40)
  const end = Math.min(text.length, start + WINDOW)
  const prefix = start > 0 ? '…' : ''
  const shift = prefix.length - start
  return {
    text: `${prefix}${text.slice(start, end)}${end < text.length ? '…' : ''}`,
    ranges: ranges.filter(([a, b]) => a >= start && b <= end).map(([a, b]) => [a + shift, b + shift]),
  }
}

function* scalars(value: unknown, path: string): Generator<[string, string]> {
  if (value === null || value === undefined) return
  if (Array.isArray(value)) {
    for (const item of value) yield* scalars(item, `${path}[]`)
  } else if (typeof value === 'object') {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) yield* scalars(item, path ? `${path}.${key}` : key)
  } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    yield [path, String(value)]
  }
}

function valueAt(data: unknown, path: string): unknown {
  let value = data
  for (const segment of path.split('.')) {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

export function findMatches(job: Searchable, search: string | undefined, filters: readonly DataFilter[] = []): SearchMatch[] {
  const words = search ? searchWords(search) : []
  const matches: SearchMatch[] = []
  for (const filter of filters) {
    const value = valueAt(job.data, filter.path)
    const equal = typeof value === 'string' ? value === filter.value : typeof value === 'number' && value === numericValue(filter.value)
    if (equal) {
      const text = String(value)
      matches.push({ field: 'data', path: filter.path, ...around(text, [[0, text.length]]) })
    }
  }
  if (words.length) {
    const fields: [SearchMatch['field'], string | undefined, string][] = [
      ['name', undefined, job.name],
      ['description', undefined, job.description],
      ['errorMessage', undefined, job.errorMessage ?? ''],
      ...[...scalars(job.data, '')].map(([path, text]): [SearchMatch['field'], string | undefined, string] => ['data', path || undefined, text]),
      ...[...scalars(job.result, '')].map(([path, text]): [SearchMatch['field'], string | undefined, string] => ['result', path || undefined, text]),
    ]
    for (const [field, path, text] of fields) {
      if (matches.length >= MAX_MATCHES) break
      const ranges = wordRanges(text, words)
      if (ranges.length) matches.push({ field, ...(path ? { path } : {}), ...around(text, ranges) })
    }
  }
  return matches.slice(0, MAX_MATCHES)
}
