/**
 * The searchable document of a job, as the SQLite index keeps it (migrations/008_job_search.ts):
 * - `body`: the name, description and error message, and every scalar VALUE (never a key) of the
 *   data and result JSON, each cut at INDEXED_FIELD_CHARS; the FTS5 tokenizer makes words of it.
 * - `kv`: one token per scalar of `data` at a plain object path (`order.id`), so that a
 *   `data.<path>=value` filter is one index lookup; the filter then checks the stored value exactly.
 *
 * Built in JavaScript by the job store in the job's own transaction: measured on 20,000 creates,
 * this costs a fraction of flattening JSON with json_tree in SQL triggers (see README, "Search").
 */

/** Meta keys whose change changes the document. */
export const SEARCH_META_KEYS = ['description', 'data', 'result', 'error_message'] as const
export const isSearchMetaKey = (key: string): boolean => (SEARCH_META_KEYS as readonly string[]).includes(key)

/** Characters of one field (or one JSON value) that are indexed. */
export const INDEXED_FIELD_CHARS = 65_536
/** Characters of a data value that its token keeps (filters verify the whole value). */
export const KV_VALUE_CHARS = 32
/** Scalars of one JSON document that are indexed (a payload of a million numbers stays bounded). */
const MAX_VALUES = 10_000
const PLAIN_KEY = /^[A-Za-z0-9_]+$/

export interface SearchDocument {
  body: string
  kv: string
}

/**
 * One token of [a-z0-9] (what every tokenizer keeps whole) for a path and a value's first
 * characters. Lossy on purpose (case folds, other characters become `z<code>z`): a token is a
 * candidate, the filter's exact check decides; the same function builds index and query tokens.
 */
export function kvToken(path: string, value: string): string {
  const head = value.length <= KV_VALUE_CHARS ? value : [...value].slice(0, KV_VALUE_CHARS).join('')
  return `${kvPrefix(path)}${encode(head)}`
}

/**
 * Per-key and per-path work repeats across jobs of a type (the same payload shape every time), so
 * its results are kept, a bounded number of them: a job's document is built in its create's
 * transaction, and this halves the time of it.
 */
const MEMO_LIMIT = 4096
function memo(fn: (key: string) => string): (key: string) => string
function memo(fn: (key: string) => boolean): (key: string) => boolean
function memo<T>(fn: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>()
  return (key) => {
    let value = cache.get(key)
    if (value === undefined) {
      value = fn(key)
      if (cache.size >= MEMO_LIMIT) cache.clear()
      cache.set(key, value)
    }
    return value
  }
}
const kvPrefix = memo((path: string) => `kv${encode(path)}v`)
const isPlainKey = memo((key: string) => PLAIN_KEY.test(key))
const childPath = new Map<string, Map<string, string>>()
/** `path.key` (or `key` at the top), the same string object each time. */
function joinPath(path: string, key: string): string {
  let children = childPath.get(path)
  if (!children) {
    if (childPath.size >= MEMO_LIMIT) childPath.clear()
    childPath.set(path, (children = new Map()))
  }
  let joined = children.get(key)
  if (joined === undefined) {
    joined = path ? `${path}.${key}` : key
    if (children.size < MEMO_LIMIT) children.set(key, joined)
  }
  return joined
}

/** Lowercase, every UTF-16 unit other than [a-z0-9] written `z<code in base 36>z`. */
function encode(text: string): string {
  const lower = text.toLowerCase()
  let out = ''
  let start = 0
  for (let i = 0; i < lower.length; i++) {
    const code = lower.charCodeAt(i)
    if ((code >= 97 && code <= 122) || (code >= 48 && code <= 57)) continue
    out += `${lower.slice(start, i)}z${code.toString(36)}z`
    start = i + 1
  }
  return start === 0 ? lower : out + lower.slice(start)
}

/** A JSON scalar as text (the form a filter value is compared in, see query.ts valueForms). */
function scalarText(value: unknown): string | null {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return null
}

function flatten(json: string, body: string[], kv: string[] | null): void {
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    body.push(json.slice(0, INDEXED_FIELD_CHARS))
    return
  }
  let budget = MAX_VALUES
  const walk = (value: unknown, path: string | null) => {
    if (budget <= 0 || value === null) return
    if (typeof value === 'object') {
      if (Array.isArray(value)) {
        for (const item of value) walk(item, null)
      } else {
        for (const key in value as Record<string, unknown>) {
          walk((value as Record<string, unknown>)[key], path !== null && isPlainKey(key) ? joinPath(path, key) : null)
        }
      }
      return
    }
    const text = scalarText(value)
    if (text === null) return
    budget--
    body.push(text.length > INDEXED_FIELD_CHARS ? text.slice(0, INDEXED_FIELD_CHARS) : text)
    if (kv && path) kv.push(kvToken(path, text))
  }
  walk(parsed, '')
}

/** The document of a job from its name and meta rows (absent keys: not set). */
export function searchDocument(name: string, meta: Readonly<Record<string, string | null | undefined>>): SearchDocument {
  const kv: string[] = []
  return { body: searchTexts(name, meta, kv).join(' \n '), kv: kv.join(' ') }
}

/** The texts a job's words come from (each cut), and its data tokens into `kv`. */
function searchTexts(name: string, meta: Readonly<Record<string, string | null | undefined>>, kv: string[]): string[] {
  const body: string[] = [name]
  const description = meta.description
  if (description) body.push(description.slice(0, INDEXED_FIELD_CHARS))
  const error = meta.error_message
  if (error) body.push(error.slice(0, INDEXED_FIELD_CHARS))
  if (meta.data != null) flatten(meta.data, body, kv)
  if (meta.result != null) flatten(meta.result, body, null)
  return body
}

/** PostgreSQL lexemes longer than this are not indexed (the tsvector limit is 2,047 bytes). */
const MAX_LEXEME_BYTES = 2000
const WORD = /[\p{L}\p{N}]+/gu

/** Adds the lowercase words of a text (runs of letters and digits, as query.ts splits a query). */
function addWords(text: string, words: Set<string>): void {
  // ASCII (most payloads): the same words, without normalising or lowercasing word by word.
  if (ASCII.test(text)) {
    for (const word of text.toLowerCase().match(ASCII_WORD) ?? []) words.add(word)
    return
  }
  for (const word of text.normalize('NFC').match(WORD) ?? []) words.add(word.toLowerCase())
}
const ASCII = /^[\x00-\x7f]*$/
const ASCII_WORD = /[a-z0-9]+/g

function distinctWords(text: string): Set<string> {
  const words = new Set<string>()
  addWords(text, words)
  return words
}

/**
 * The SQLite index row of a job (FTS5 `job_search`, or `job_search_pending` until it moves
 * there; migrations/012): its distinct words and its distinct data tokens, each list between
 * single spaces with a space at each end, so that a pending row matches a word prefix with
 * `instr(body, ' ' || word)` and a token with `instr(kv, ' ' || token || ' ')`, as FTS5 would.
 */
export function sqliteSearchRow(name: string, meta: Readonly<Record<string, string | null | undefined>>): SearchDocument {
  const kv: string[] = []
  const words = distinctWords(searchTexts(name, meta, kv).join(' '))
  const tokens = new Set(kv)
  return { body: words.size ? ` ${[...words].join(' ')} ` : ' ', kv: tokens.size ? ` ${[...tokens].join(' ')} ` : ' ' }
}

/** The `kv` element of a job's creator (PostgreSQL, migration 014): no data path starts with `@`. */
export const ownerToken = (userId: number): string => `@u:${userId}`

/**
 * The PostgreSQL index row of a job (migrations/008_job_search.ts), built by the job store in
 * the statement that creates the job: `tsv`, the distinct lowercase words as tsvector input
 * (letters and digits only, so nothing needs quoting), and `kv`, `path=value` (32 characters)
 * of every scalar of data at a plain object path, and its creator's token (migration 014) — the
 * same as the triggers' refresh computes.
 */
export function postgresSearchRow(
  name: string,
  meta: Readonly<Record<string, string | null | undefined>>,
  createdBy: number | null = null,
): { tsv: string; kv: string[] } {
  const { body } = searchDocument(name, meta)
  const words = [...distinctWords(body)].filter((word) => word.length * 3 <= MAX_LEXEME_BYTES || Buffer.byteLength(word) <= MAX_LEXEME_BYTES)
  const kv = new Set<string>()
  if (meta.data != null) {
    let parsed: unknown
    try {
      parsed = JSON.parse(meta.data)
    } catch {
      parsed = undefined
    }
    collectPaths(parsed, '', kv)
  }
  if (createdBy !== null) kv.add(ownerToken(createdBy))
  return { tsv: words.map((word) => `'${word}'`).join(' '), kv: [...kv] }
}

function collectPaths(value: unknown, path: string, out: Set<string>): void {
  if (value === null || value === undefined || Array.isArray(value)) return
  if (typeof value === 'object') {
    for (const key in value as Record<string, unknown>) {
      if (PLAIN_KEY.test(key)) collectPaths((value as Record<string, unknown>)[key], path ? `${path}.${key}` : key, out)
    }
    return
  }
  const text = scalarText(value)
  if (text !== null && path) out.add(`${path}=${[...text].slice(0, KV_VALUE_CHARS).join('')}`)
}
