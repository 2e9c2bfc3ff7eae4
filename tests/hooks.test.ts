import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { HookRegistry } from '../core/hooks/Hooks.js'

/** A logger that keeps what it logged, to check that errors carry the plugin's name. */
function recordingLogger() {
  const lines: any[] = []
  const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(JSON.parse(line)) })
  return { logger, lines }
}

describe('HookRegistry', () => {
  it('runs actions in priority order, then registration order, awaiting async callbacks', async () => {
    const { logger } = recordingLogger()
    const hooks = new HookRegistry(logger)
    const order: string[] = []
    hooks.addAction('init', async () => {
      await new Promise((r) => setTimeout(r, 5))
      order.push('b10')
    })
    hooks.addAction('init', () => void order.push('a5'), { priority: 5 })
    hooks.addAction('init', () => void order.push('c10'))
    hooks.addAction('init', () => void order.push('d20'), { priority: 20 })
    await hooks.doAction('init')
    expect(order).toEqual(['a5', 'b10', 'c10', 'd20'])
  })

  it('threads filters in order and skips a filter that throws, reporting its owner', async () => {
    const { logger, lines } = recordingLogger()
    const hooks = new HookRegistry(logger)
    hooks.addFilter('title', (v: string) => `${v}!`, { owner: 'exclaim' })
    hooks.addFilter('title', () => {
      throw new Error('bad filter')
    }, { owner: 'evil-plugin', priority: 11 })
    hooks.addFilter('title', (v: string) => v.toUpperCase(), { priority: 1 })
    expect(await hooks.applyFilters('title', 'hi')).toBe('HI!')
    expect(lines.some((l) => l.plugin === 'evil-plugin' && /bad filter/.test(l.msg))).toBe(true)
  })

  it('isolates a throwing action: the others run and the caller never sees the error', async () => {
    const { logger, lines } = recordingLogger()
    const hooks = new HookRegistry(logger)
    const ran: string[] = []
    hooks.addAction('save', () => {
      throw new Error('nope')
    }, { owner: 'broken' })
    hooks.addAction('save', async () => {
      await Promise.reject(new Error('async nope'))
    }, { owner: 'broken-async' })
    hooks.addAction('save', () => void ran.push('ok'))
    await expect(hooks.doAction('save')).resolves.toBeUndefined()
    expect(ran).toEqual(['ok'])
    expect(lines.map((l) => l.plugin).sort()).toEqual(['broken', 'broken-async'])
  })

  it('removes actions and filters', async () => {
    const hooks = new HookRegistry(recordingLogger().logger)
    const calls: number[] = []
    const cb = () => void calls.push(1)
    hooks.addAction('x', cb)
    expect(hooks.removeAction('x', cb)).toBe(true)
    expect(hooks.removeAction('x', cb)).toBe(false)
    await hooks.doAction('x')
    const f = (v: number) => v + 1
    hooks.addFilter('n', f)
    hooks.removeFilter('n', f)
    expect(await hooks.applyFilters('n', 1)).toBe(1)
    expect(calls).toEqual([])
  })

  it('emits typed events safely: a throwing listener does not stop the others; unsubscribe works', () => {
    const { logger, lines } = recordingLogger()
    const hooks = new HookRegistry(logger)
    const seen: string[] = []
    hooks.on('job:deleted', () => {
      throw new Error('listener broke')
    }, 'listener-plugin')
    const off = hooks.on('job:deleted', ({ jobId }) => void seen.push(jobId))
    expect(() => hooks.safeEmit('job:deleted', { jobId: 'a', createdBy: null })).not.toThrow()
    off()
    hooks.safeEmit('job:deleted', { jobId: 'b', createdBy: null })
    expect(seen).toEqual(['a'])
    expect(lines.some((l) => l.plugin === 'listener-plugin')).toBe(true)
  })
})
