import { describe, expect, it } from 'vitest'
import { sanitizeSvg } from '../core/security/sanitizeSvg.js'

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

  it('returns null when nothing of an SVG is left, and rejects oversized input', () => {
    expect(sanitizeSvg('<script>alert(1)</script>')).toBeNull()
    expect(sanitizeSvg('just text')).toBeNull()
    expect(() => sanitizeSvg(`<svg>${' '.repeat(5 * 1024 * 1024)}</svg>`)).toThrow(/larger than/)
  })
})
