import { ValidationError } from '../errors.js'

/**
 * `{{steps[0].result.content}}` templates in chain payloads: a plain path lookup (no eval, no
 * expressions). A string that is exactly one template takes the value itself (object, number...);
 * a template inside a longer string is replaced by the value as text (JSON for non-strings).
 * Paths start with `steps[N]` followed by `.result` or `.jobId`, then `.key` or `[N]` segments.
 */

const TEMPLATE = /\{\{\s*([^{}]*?)\s*\}\}/g
const WHOLE = /^\{\{\s*([^{}]*?)\s*\}\}$/
const SEGMENT = /^(?:\.([A-Za-z_$][\w$-]*)|\[(\d{1,6})\])/
const FORBIDDEN = new Set(['__proto__', 'prototype', 'constructor'])

export interface StepOutput {
  jobId: string
  result: unknown
}

export class TemplateError extends ValidationError {}

type Path = { step: number; keys: (string | number)[] }

export function parsePath(expression: string): Path {
  const head = /^steps\[(\d{1,3})\]/.exec(expression)
  if (!head) throw new TemplateError(`Template {{${expression}}} must start with steps[N].`)
  const keys: (string | number)[] = []
  let rest = expression.slice(head[0].length)
  while (rest.length) {
    const match = SEGMENT.exec(rest)
    if (!match) throw new TemplateError(`Template {{${expression}}} is not a plain path.`)
    const key = match[1] ?? Number(match[2])
    if (typeof key === 'string' && FORBIDDEN.has(key)) throw new TemplateError(`Template {{${expression}}} uses a forbidden key.`)
    keys.push(key)
    rest = rest.slice(match[0].length)
  }
  if (keys[0] !== 'result' && keys[0] !== 'jobId') {
    throw new TemplateError(`Template {{${expression}}} must read .result or .jobId of a step.`)
  }
  return { step: Number(head[1]), keys }
}

/** Every template path in `value` (strings inside objects and arrays). */
export function templatePaths(value: unknown): Path[] {
  const paths: Path[] = []
  walkStrings(value, (text) => {
    for (const match of text.matchAll(TEMPLATE)) paths.push(parsePath(match[1]!))
    return text
  })
  return paths
}

/** Checks that the templates of step `index` refer only to earlier steps. */
export function assertTemplatesValid(payload: unknown, index: number): void {
  for (const path of templatePaths(payload)) {
    if (path.step >= index) {
      throw new TemplateError(`Step ${index} refers to steps[${path.step}], which has not run before it (only earlier steps can be used).`)
    }
  }
}

function lookup(path: Path, steps: StepOutput[], expression: string): unknown {
  let current: unknown = steps[path.step]
  if (current === undefined) throw new TemplateError(`Template {{${expression}}}: step ${path.step} has no output.`)
  for (const key of path.keys) {
    if (current === null || typeof current !== 'object' || !Object.prototype.hasOwnProperty.call(current, key)) {
      throw new TemplateError(`Template {{${expression}}} did not resolve: no ${JSON.stringify(key)} there.`)
    }
    current = (current as Record<string | number, unknown>)[key]
  }
  return current
}

/** Returns a copy of `value` with every template resolved from `steps`; TemplateError when one does not resolve. */
export function resolveTemplates(value: unknown, steps: StepOutput[]): unknown {
  return walkStrings(value, (text) => {
    const whole = WHOLE.exec(text)
    if (whole) return lookup(parsePath(whole[1]!), steps, whole[1]!)
    return text.replace(TEMPLATE, (_m, expression: string) => {
      const found = lookup(parsePath(expression), steps, expression)
      return typeof found === 'string' ? found : JSON.stringify(found) ?? ''
    })
  })
}

function walkStrings(value: unknown, visit: (text: string) => unknown): unknown {
  if (typeof value === 'string') return visit(value)
  if (Array.isArray(value)) return value.map((entry) => walkStrings(entry, visit))
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, entry] of Object.entries(value)) out[key] = walkStrings(entry, visit)
    return out
  }
  return value
}
