import path from 'node:path'
import { fileURLToPath } from 'node:url'
import request from 'supertest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Jobpost } from '../core/createJobpost.js'
import { startJobpost, userWithRole } from './support/harness.js'

const pluginsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'plugins')

describe('plugin loading', () => {
  let jobpost: Jobpost

  beforeAll(async () => {
    ;(globalThis as any).__goodPluginStarts = 0
    jobpost = await startJobpost({
      pluginsDir,
      activePlugins: ['good-plugin', 'broken-plugin', 'missing-plugin', '../escape', 'throws-in-hook'],
    })
  })
  afterAll(() => jobpost.close())

  it('loads good plugins once at start and skips broken ones with their reason', () => {
    expect(jobpost.plugins.loaded).toEqual(['good-plugin', 'throws-in-hook'])
    expect(jobpost.plugins.failed.map((f) => f.slug)).toEqual(['broken-plugin', 'missing-plugin', '../escape'])
    expect(jobpost.plugins.failed[0]!.error).toMatch(/kaboom at start/)
    expect((globalThis as any).__goodPluginStarts).toBe(1)
  })

  it('registers post types in one process-wide registry (the core jobs type too)', () => {
    expect(jobpost.postTypes.get('books')?.name).toBe('Books')
    expect(jobpost.postTypes.get('jobs')?.fields?.some((f) => f.slug === 'status')).toBe(true)
  })

  it('applies a plugin filter, and a throwing plugin action does not take the server down', async () => {
    expect(await jobpost.hooks.applyFilters('greeting', 'hello')).toBe('hello from good-plugin')
    await jobpost.hooks.doAction('nightly')
    const admin = await userWithRole(jobpost, 'administrator')
    await request(jobpost.app).get('/api/v1/jobs').set('authorization', `Bearer ${admin.token}`).expect(200)
  })

  it('mounts plugin routes behind authentication', async () => {
    await request(jobpost.app).get('/api/v1/plugins/good-plugin/hello').expect(401)
    const user = await userWithRole(jobpost, 'subscriber')
    const res = await request(jobpost.app).get('/api/v1/plugins/good-plugin/hello').set('authorization', `Bearer ${user.token}`).expect(200)
    expect(res.body.data.hello).toBe(user.email)
  })
})
