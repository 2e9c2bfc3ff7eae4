import createDOMPurify, { type DOMPurify } from 'dompurify'
import { JSDOM } from 'jsdom'
import { ValidationError } from '../errors.js'

export const MAX_SVG_BYTES = 64 * 1024

let purifier: DOMPurify | undefined

function getPurifier(): DOMPurify {
  if (purifier) return purifier
  const { window } = new JSDOM('')
  const instance = createDOMPurify(window as unknown as Parameters<typeof createDOMPurify>[0])
  // Only same-document references survive: no external images, fonts, scripts or stylesheets.
  instance.addHook('uponSanitizeAttribute', (_node, data) => {
    const name = data.attrName.toLowerCase()
    const value = data.attrValue.trim()
    if ((name === 'href' || name === 'xlink:href') && !value.startsWith('#')) data.keepAttr = false
    if (/url\s*\(/i.test(value) && !/^url\(\s*['"]?#[\w-]+['"]?\s*\)$/i.test(value)) data.keepAttr = false
    if (name.startsWith('on')) data.keepAttr = false
  })
  purifier = instance
  return instance
}

/**
 * Sanitises a user SVG for storage: SVG profile only, no scripts, event handlers, styles,
 * foreignObject, animation of attributes, or external references. Returns null when nothing
 * usable is left. Parsed as HTML, so DOCTYPE entity tricks (XXE, billion laughs) are inert.
 */
export function sanitizeSvg(input: string): string | null {
  if (Buffer.byteLength(input, 'utf8') > MAX_SVG_BYTES) {
    throw new ValidationError(`iconSvg is larger than ${MAX_SVG_BYTES / 1024} KB.`)
  }
  const withoutDoctype = input.replace(/<!DOCTYPE[\s\S]*?(\[[\s\S]*?\]\s*)?>/gi, '').replace(/<\?xml[\s\S]*?\?>/gi, '')
  const clean = getPurifier().sanitize(withoutDoctype, {
    USE_PROFILES: { svg: true, svgFilters: true },
    FORBID_TAGS: ['style', 'foreignObject', 'script', 'image', 'animate', 'animateTransform', 'animateMotion', 'set', 'a'],
    FORBID_ATTR: ['style'],
  })
  const trimmed = String(clean).trim()
  return /^<svg[\s>]/i.test(trimmed) ? trimmed : null
}
