import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import request from 'supertest'
import { afterAll, describe, expect, it } from 'vitest'
import { startJobpost } from './support/harness.js'

const run = promisify(execFile)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobpost-cli-'))
const file = path.join(dir, 'cli.sqlite')
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

// `node --import tsx` is what `npm run cli` amounts to, without npm's and npx's start-up cost.
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'core/cli.ts', ...args], {
    env: { ...process.env, DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'silent' },
  })

// Each call starts a process that loads TypeScript: slow on a busy two-core machine.
describe('npm run cli', { timeout: 120_000 }, () => {
  it('creates a user who can then log in with the role given', async () => {
    const { stdout } = await cli('user:create', '--email', 'Editor@Example.com', '--password', 'a long password', '--role', 'editor')
    expect(stdout).toMatch(/Created user \d+ <editor@example.com> with role editor/)
    const jobpost = await startJobpost({ database: { dialect: 'sqlite', filename: file } }, { listen: false })
    try {
      const res = await request(jobpost.app).post('/api/v1/auth/login').send({ email: 'editor@example.com', password: 'a long password' }).expect(200)
      expect(res.body.data.user.roles).toEqual(['editor'])
    } finally {
      await jobpost.close()
    }
  })

  it('exits non-zero with a clear message on bad input', async () => {
    await expect(cli('user:create', '--email', 'x@example.com', '--password', 'short')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/VALIDATION_FAILED: The password must have at least 8 characters/),
    })
    await expect(cli('nonsense')).rejects.toMatchObject({ stderr: expect.stringMatching(/Usage:/) })
  })
})
