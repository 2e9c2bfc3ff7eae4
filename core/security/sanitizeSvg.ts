import { createRequire } from 'node:module'
import type SanitizeHtml from 'sanitize-html'
import { InvalidSvgError } from '../errors.js'

/** Limits of the contract (API.md, "Limits"): bigger or deeper icons are refused with INVALID_SVG. */
export const MAX_SVG_BYTES = 32 * 1024
export const MAX_SVG_DEPTH = 64
/** No icon needs more; it bounds the sanitiser's work (≈ 1.5 µs an element) well under 20 ms. */
export const MAX_SVG_ELEMENTS = 4000

/**
 * Linear passes over the markup, before any parsing: the first (only when there is any) removes what an icon never needs
 * and a parser could be tricked by (comments, `<!DOCTYPE ...[...]>` with its internal subset,
 * `<?xml ...?>` and other processing instructions, CDATA sections); the second measures the
 * result (so markup that the removal joins together is counted too). Throws InvalidSvgError when
 * the icon is over MAX_SVG_BYTES, nests deeper than MAX_SVG_DEPTH or has more than
 * MAX_SVG_ELEMENTS elements. O(length) time, no recursion: a hostile icon is refused in
 * microseconds.
 */
export function scanSvg(input: string): string {
  if (typeof input !== 'string') throw new InvalidSvgError('iconSvg must be a string.')
  // A JS string's length is at least its byte length / 3: check cheaply, then exactly.
  if (input.length > MAX_SVG_BYTES || Buffer.byteLength(input, 'utf8') > MAX_SVG_BYTES) {
    throw new InvalidSvgError(`iconSvg is larger than ${MAX_SVG_BYTES / 1024} KB.`)
  }
  const stripped = input.includes('<!') || input.includes('<?') ? strip(input) : input
  measure(stripped)
  return stripped
}

/** `text` without comments, declarations (with an internal subset), processing instructions and CDATA. */
function strip(text: string): string {
  let out = ''
  let from = 0
  for (;;) {
    const bang = text.indexOf('<!', from)
    const question = text.indexOf('<?', from)
    const at = bang === -1 ? question : question === -1 ? bang : Math.min(bang, question)
    if (at === -1) return out + text.slice(from)
    out += text.slice(from, at)
    from = endOfMarkup(text, at)
  }
}

/** Where the comment, CDATA section, processing instruction or declaration starting at `at` ends. */
function endOfMarkup(text: string, at: number): number {
  const endOf = (marker: string, after: number) => {
    const found = text.indexOf(marker, after)
    return found === -1 ? text.length : found + marker.length
  }
  if (text.startsWith('<!--', at)) return endOf('-->', at + 4)
  if (text.startsWith('<![CDATA[', at)) return endOf(']]>', at + 9)
  if (text.startsWith('<?', at)) return endOf('>', at + 2)
  // A declaration (DOCTYPE); an internal subset [...] may hold '>' (entity declarations).
  const close = text.indexOf('>', at + 2)
  const stop = close === -1 ? text.length : close
  for (let k = at + 2; k < stop; k++) {
    if (text[k] === '[') {
      const subsetEnd = text.indexOf(']', k)
      return subsetEnd === -1 ? text.length : endOf('>', subsetEnd)
    }
  }
  return close === -1 ? text.length : close + 1
}

/** Counts elements and nesting (markup left by `strip` is skipped) and throws over the limits. */
function measure(text: string): void {
  let depth = 0
  let elements = 0
  let i = 0
  while (i < text.length) {
    const lt = text.indexOf('<', i)
    if (lt === -1) return
    const next = text[lt + 1]
    if (next === '!' || next === '?') {
      i = endOfMarkup(text, lt)
    } else if (next === '/') {
      depth = Math.max(0, depth - 1)
      const gt = text.indexOf('>', lt + 2)
      i = gt === -1 ? text.length : gt + 1
    } else if (next !== undefined && /[A-Za-z_:]/.test(next)) {
      // An opening tag: find its end outside quoted attribute values.
      let j = lt + 1
      let quote = ''
      for (; j < text.length; j++) {
        const c = text[j]!
        if (quote) {
          if (c === quote) quote = ''
        } else if (c === '"' || c === "'") {
          quote = c
        } else if (c === '>') {
          break
        }
      }
      elements += 1
      if (elements > MAX_SVG_ELEMENTS) throw new InvalidSvgError(`iconSvg has more than ${MAX_SVG_ELEMENTS} elements.`)
      if (text[j - 1] !== '/') {
        depth += 1
        if (depth > MAX_SVG_DEPTH) throw new InvalidSvgError(`iconSvg nests elements deeper than ${MAX_SVG_DEPTH} levels.`)
      }
      i = j + 1
    } else {
      i = lt + 1
    }
  }
}

// SVG 1.1 shapes, structure, gradients, clipping, masking and the simple filter primitives.
// Not allowed: script, style, foreignObject, image, feImage, a, animation (animate, set, ...),
// title/desc (HTML integration points when the icon is inlined), fonts, cursors, views, and
// use/symbol (nested <use> fans out exponentially when rendered: a "billion laughs" for the browser).
const FILTER_TAGS = [
  'filter', 'feBlend', 'feColorMatrix', 'feComponentTransfer', 'feComposite', 'feDropShadow', 'feFlood',
  'feFuncA', 'feFuncB', 'feFuncG', 'feFuncR', 'feGaussianBlur', 'feMerge', 'feMergeNode', 'feMorphology', 'feOffset',
]
const ALLOWED_TAGS = [
  'svg', 'g', 'defs', 'path', 'rect', 'circle', 'ellipse', 'line', 'polyline', 'polygon',
  'text', 'tspan', 'linearGradient', 'radialGradient', 'stop', 'clipPath', 'mask', 'pattern', 'marker',
  ...FILTER_TAGS,
]
const ALLOWED_ATTRIBUTES = [
  'id', 'class', 'transform', 'x', 'y', 'x1', 'y1', 'x2', 'y2', 'cx', 'cy', 'r', 'rx', 'ry', 'fx', 'fy', 'fr',
  'width', 'height', 'd', 'points', 'pathLength', 'viewBox', 'preserveAspectRatio', 'version',
  'fill', 'fill-opacity', 'fill-rule', 'stroke', 'stroke-width', 'stroke-linecap', 'stroke-linejoin',
  'stroke-miterlimit', 'stroke-dasharray', 'stroke-dashoffset', 'stroke-opacity', 'opacity', 'color',
  'clip-path', 'clip-rule', 'mask', 'filter', 'display', 'visibility', 'vector-effect', 'shape-rendering',
  'paint-order', 'stop-color', 'stop-opacity', 'offset', 'gradientUnits', 'gradientTransform', 'spreadMethod',
  'patternUnits', 'patternContentUnits', 'patternTransform', 'clipPathUnits', 'maskUnits', 'maskContentUnits',
  'markerWidth', 'markerHeight', 'markerUnits', 'refX', 'refY', 'orient', 'marker-start', 'marker-mid', 'marker-end',
  'font-family', 'font-size', 'font-weight', 'font-style', 'text-anchor', 'dominant-baseline', 'letter-spacing',
  'dx', 'dy', 'rotate', 'textLength', 'lengthAdjust', 'href', 'xlink:href',
  'aria-hidden', 'aria-label', 'role', 'focusable',
  'filterUnits', 'primitiveUnits', 'in', 'in2', 'result', 'stdDeviation', 'operator', 'k1', 'k2', 'k3', 'k4',
  'values', 'type', 'mode', 'flood-color', 'flood-opacity', 'radius', 'tableValues', 'slope', 'intercept',
  'amplitude', 'exponent',
]
const SAME_DOCUMENT_URL = /^url\(\s*(['"]?)#[\w.-]+\1\s*\)$/i

type Sanitize = typeof SanitizeHtml
let sanitizer: { sanitize: Sanitize; options: SanitizeHtml.IOptions } | undefined

/**
 * sanitize-html (htmlparser2, a streaming tokenizer: no DOM emulator, no recursion), loaded on
 * the first icon, so processes that never see one (workers) never load it.
 */
function getSanitizer() {
  if (sanitizer) return sanitizer
  const sanitize = createRequire(import.meta.url)('sanitize-html') as Sanitize
  const options: SanitizeHtml.IOptions = {
    allowedTags: ALLOWED_TAGS,
    allowedAttributes: {
      '*': ALLOWED_ATTRIBUTES,
      svg: [
        ...ALLOWED_ATTRIBUTES,
        { name: 'xmlns', values: ['http://www.w3.org/2000/svg'], multiple: false },
        { name: 'xmlns:xlink', values: ['http://www.w3.org/1999/xlink'], multiple: false },
      ],
    },
    allowedSchemes: [],
    allowedSchemesByTag: {},
    allowProtocolRelative: false,
    disallowedTagsMode: 'discard',
    // Text inside these is dropped with them (foreignObject holds HTML; title/desc are integration points).
    nonTextTags: ['script', 'style', 'foreignObject', 'title', 'desc', 'textarea', 'noscript', 'iframe', 'xmp', 'noembed', 'noframes'],
    // SVG draws text only inside <text>/<tspan>: text anywhere else (whitespace, or the content
    // of a refused element such as <svg:script>) is dropped, never passed on even as escaped text.
    textFilter: (text, tagName) => (tagName === 'text' || tagName === 'tspan' ? text : ''),
    nestingLimit: MAX_SVG_DEPTH,
    // XML rules: names keep their case (viewBox, linearGradient), <path/> closes itself.
    parser: { xmlMode: true, lowerCaseTags: false, lowerCaseAttributeNames: false, recognizeSelfClosing: true, decodeEntities: true },
    transformTags: {
      // Only same-document references survive: no external images, fonts, scripts or stylesheets.
      '*': (tagName, attribs) => {
        const kept: Record<string, string> = {}
        for (const [name, raw] of Object.entries(attribs)) {
          const value = String(raw).trim()
          const lower = name.toLowerCase()
          if (lower.startsWith('on')) continue
          if ((lower === 'href' || lower.endsWith(':href')) && !/^#[\w.-]+$/.test(value)) continue
          if (/url\s*\(/i.test(value) && !SAME_DOCUMENT_URL.test(value)) continue
          if (/(?:javascript|vbscript|data)\s*:/i.test(value)) continue
          kept[name] = raw
        }
        return { tagName, attribs: kept }
      },
    },
  }
  sanitizer = { sanitize, options }
  return sanitizer
}

/**
 * Sanitises a user SVG for storage: an allow-list of SVG elements and attributes, no scripts,
 * event handlers, styles, foreignObject, animation or external references. Returns null when
 * nothing usable is left. Over MAX_SVG_BYTES or deeper than MAX_SVG_DEPTH: InvalidSvgError,
 * decided by a linear scan before any parsing. DOCTYPEs (entities: XXE, billion laughs) are
 * removed by that scan, and undeclared entities stay text.
 */
export function sanitizeSvg(input: string): string | null {
  const scanned = scanSvg(input)
  const { sanitize, options } = getSanitizer()
  const trimmed = sanitize(scanned, options).trim()
  return /^<svg[\s>]/.test(trimmed) && /<\/svg>$/.test(trimmed) ? trimmed : null
}
