import { describe, expect, it } from 'vitest'
import { MAX_SVG_BYTES, MAX_SVG_DEPTH, MAX_SVG_ELEMENTS, sanitizeSvg } from '../core/security/sanitizeSvg.js'

describe('sanitizeSvg', () => {
  it('keeps a normal icon', () => {
    const icon = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor"><path d="M21 16V8"/></svg>'
    const clean = sanitizeSvg(icon)!
    expect(clean).toContain('<path d="M21 16V8"')
    expect(clean).toContain('viewBox="0 0 24 24"')
  })

  it.each([
    ['script', '<svg><script>alert(1)</script><path d="M0 0"/></svg>', /script|alert/i],
    ['onload', '<svg onload="alert(1)"><path d="M0 0"/></svg>', /onload|alert/i],
    ['event on child', '<svg><path d="M0 0" onclick="alert(1)"/></svg>', /onclick/i],
    ['foreignObject', '<svg><foreignObject><iframe src="javascript:alert(1)"></iframe></foreignObject></svg>', /foreignObject|iframe|javascript/i],
    ['javascript: href', '<svg><a href="javascript:alert(1)"><path d="M0 0"/></a></svg>', /javascript/i],
    ['xlink javascript', '<svg xmlns:xlink="http://www.w3.org/1999/xlink"><use xlink:href="javascript:alert(1)"/></svg>', /javascript/i],
    ['external use', '<svg><use href="https://evil.example.com/x.svg#a"/></svg>', /evil/i],
    ['external image', '<svg><image href="https://evil.example.com/t.png"/></svg>', /evil|<image/i],
    ['animate to javascript', '<svg><a><animate attributeName="href" to="javascript:alert(1)"/></a></svg>', /animate|javascript/i],
    ['style element', '<svg><style>@import url(https://evil.example.com/x.css)</style></svg>', /style|evil/i],
    ['style attribute', '<svg><path style="fill:url(https://evil.example.com/x)" d="M0 0"/></svg>', /style|evil/i],
    ['external url() fill', '<svg><path fill="url(https://evil.example.com/#g)" d="M0 0"/></svg>', /evil/i],
    ['XXE', '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg><text>&xxe;</text></svg>', /passwd|ENTITY|root:/i],
    ['billion laughs', '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><svg><text>&lol2;</text></svg>', /lollollol|ENTITY/i],
  ])('removes %s', (_name, input, forbidden) => {
    const clean = sanitizeSvg(input)
    expect(clean ?? '').not.toMatch(forbidden)
  })

  it('keeps same-document references', () => {
    const clean = sanitizeSvg('<svg><defs><linearGradient id="g"/></defs><path fill="url(#g)" d="M0 0"/></svg>')!
    expect(clean).toContain('url(#g)')
  })

  it('returns null when nothing of an SVG is left', () => {
    expect(sanitizeSvg('<script>alert(1)</script>')).toBeNull()
    expect(sanitizeSvg('just text')).toBeNull()
  })

  it('keeps the case XML needs (viewBox, linearGradient) and closes every element', () => {
    const clean = sanitizeSvg('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><linearGradient id="a"><stop offset="1"/></linearGradient><rect width="8" height="8" fill="url(#a)"/></svg>')!
    expect(clean).toBe('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><linearGradient id="a"><stop offset="1"></stop></linearGradient><rect width="8" height="8" fill="url(#a)"></rect></svg>')
  })

  it.each([
    ['a prefixed script', '<svg><svg:script>alert(1)</svg:script></svg>', /script|alert/i],
    ['an upper-case handler', '<svg ONLOAD="alert(1)"><path d="M0 0"/></svg>', /onload|alert/i],
    ['an entity-encoded javascript: href', '<svg><linearGradient id="a" href="&#106;avascript:alert(1)"/></svg>', /javascript|alert|href/i],
    ['a relative external href', '<svg><linearGradient id="a" href="evil.svg#x"/></svg>', /evil|href/i],
    ['nested use (exponential rendering)', '<svg><defs><g id="a"><path d="M0 0"/></g></defs><use href="#a"/><use href="#a"/></svg>', /<use/i],
    ['title (an HTML integration point when inlined)', '<svg><title>&lt;img src=x onerror=alert(1)&gt;</title></svg>', /title|onerror/i],
    ['a foreign namespace declaration', '<svg xmlns="http://www.w3.org/1999/xhtml"><path d="M0 0"/></svg>', /xhtml/i],
    ['CDATA', '<svg><text><![CDATA[<script>alert(1)</script>]]></text></svg>', /script|alert|CDATA/i],
    ['a comment hiding markup', '<svg><!-- <script>alert(1)</script> --><path d="M0 0"/></svg>', /script|alert/i],
  ])('removes %s', (_name, input, forbidden) => {
    expect(sanitizeSvg(input) ?? '').not.toMatch(forbidden)
  })
})

/** CPU milliseconds `work` took (user + system). */
function cpuMs(work: () => unknown): number {
  const before = process.cpuUsage()
  work()
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1000
}

describe('SVG limits: refused before any parsing', () => {
  const nested = (depth: number) => `<svg>${'<g>'.repeat(depth - 1)}${'</g>'.repeat(depth - 1)}</svg>`

  it(`refuses more than ${MAX_SVG_BYTES / 1024} KB with INVALID_SVG (bytes, not characters)`, () => {
    const at = `<svg>${' '.repeat(MAX_SVG_BYTES - 11)}</svg>`
    expect(Buffer.byteLength(at)).toBe(MAX_SVG_BYTES)
    expect(sanitizeSvg(at)).toBe('<svg></svg>')
    expect(() => sanitizeSvg(`${at} `)).toThrow(expect.objectContaining({ code: 'INVALID_SVG', status: 400 }))
    // 11,000 three-byte characters: 33 KB in UTF-8, 11,000 in length.
    expect(() => sanitizeSvg(`<svg><text>${'€'.repeat(11_000)}</text></svg>`)).toThrow(/larger than 32 KB/)
    expect(() => sanitizeSvg(`<svg>${' '.repeat(5 * 1024 * 1024)}</svg>`)).toThrow(expect.objectContaining({ code: 'INVALID_SVG' }))
  })

  it(`refuses nesting deeper than ${MAX_SVG_DEPTH} elements, and accepts ${MAX_SVG_DEPTH}`, () => {
    expect(sanitizeSvg(nested(MAX_SVG_DEPTH))).toContain('<g><g>')
    expect(() => sanitizeSvg(nested(MAX_SVG_DEPTH + 1))).toThrow(expect.objectContaining({ code: 'INVALID_SVG' }))
    // The icon: 5,000 nested <g> (35 KB) and 4,000 (fits in 32 KB) are refused at once.
    for (const depth of [5000, 4000]) {
      const icon = nested(depth)
      expect(() => sanitizeSvg(icon)).toThrow(/deeper than 64|larger than/)
      const refusedIn = cpuMs(() => {
        try {
          sanitizeSvg(icon)
        } catch {
          // refused, as asserted above
        }
      })
      expect(refusedIn).toBeLessThan(5)
    }
    // Self-closing and closed siblings do not add depth; quoted '>' and comments do not confuse the scan.
    expect(sanitizeSvg(`<svg>${'<g/>'.repeat(300)}${'<g></g>'.repeat(300)}</svg>`)).not.toBeNull()
    expect(sanitizeSvg(`<svg><path d="M0 0" id="a>b"/><!-- <g><g> -->${nested(MAX_SVG_DEPTH - 1)}</svg>`)).not.toBeNull()
  })

  it(`refuses more than ${MAX_SVG_ELEMENTS} elements`, () => {
    expect(() => sanitizeSvg(`<svg>${'<g/>'.repeat(MAX_SVG_ELEMENTS)}</svg>`)).toThrow(expect.objectContaining({ code: 'INVALID_SVG' }))
    expect(sanitizeSvg(`<svg>${'<g/>'.repeat(MAX_SVG_ELEMENTS - 1)}</svg>`)).not.toBeNull()
  })

  it('counts elements that the removal of comments joins together', () => {
    // `<<!---->g/>` becomes `<g/>` once the comment is gone: counted after the removal.
    expect(() => sanitizeSvg(`<svg>${'<<!---->g/>'.repeat(2000)}${'<g/>'.repeat(2500)}</svg>`)).toThrow(expect.objectContaining({ code: 'INVALID_SVG' }))
    expect(() => sanitizeSvg(`<svg>${'<<!---->g>'.repeat(70)}</svg>`)).toThrow(/deeper than 64/)
  })

  it('removes a DOCTYPE with an internal subset holding ">" and keeps the drawing after it', () => {
    const clean = sanitizeSvg('<!DOCTYPE svg [<!ENTITY a "<g>"><!ENTITY b "x">]><svg><path d="M1 1"/><text>&a;&b;</text></svg>')
    expect(clean).toBe('<svg><path d="M1 1"></path><text>&amp;a;&amp;b;</text></svg>')
  })

  /**
   * The slowest icons that are still accepted: each sanitised in at most 20 ms of CPU (median of
   * 5, warm). CPU time, not wall time: the work done, whatever else the machine is running.
   */
  it.each([
    ['3,999 empty elements', `<svg>${'<g/>'.repeat(MAX_SVG_ELEMENTS - 1)}</svg>`],
    ['900 drawn paths (30 KB)', `<svg xmlns="http://www.w3.org/2000/svg">${'<path d="M0 0L10 10" fill="red"/>'.repeat(900)}</svg>`],
    ['32 KB of entities', `<svg><text>${'&amp;'.repeat(6500)}</text></svg>`],
    ['32 KB of attributes', `<svg><path ${'fill="red" '.repeat(2900)}/></svg>`],
    ['32 KB of refused attributes', `<svg ${'a="1" '.repeat(5400)}/>`],
    ['64 levels, wide', `<svg>${'<g fill="red">'.repeat(63)}${'<path d="M0 0"/>'.repeat(1500)}${'</g>'.repeat(63)}</svg>`],
    ['32 KB of "<"', `<svg>${'<'.repeat(32_000)}</svg>`],
  ])('sanitises %s in ≤ 20 ms', (_name, icon) => {
    expect(Buffer.byteLength(icon)).toBeLessThanOrEqual(MAX_SVG_BYTES)
    sanitizeSvg(icon)
    const times = Array.from({ length: 5 }, () => cpuMs(() => sanitizeSvg(icon))).sort((a, b) => a - b)
    expect(times[2]).toBeLessThanOrEqual(20)
  })
})
