import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const SCRIPT = path.resolve('admin-ui/scripts/build-if-stale.mjs')

/** `npm start`'s prestart step, on a copy of the admin UI's layout (only `--check`: no build is run). */
function check(dir: string) {
  const result = spawnSync(process.execPath, [SCRIPT, '--check'], { env: { ...process.env, JOBPOST_ADMIN_UI_DIR: dir }, encoding: 'utf8' })
  return { status: result.status, out: result.stdout.trim() }
}

let dir: string | undefined
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

describe('admin-ui/scripts/build-if-stale.mjs (package.json "prestart")', () => {
  it('asks for a build when dist is missing or older than any source, and not otherwise', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'admin-ui-'))
    fs.mkdirSync(path.join(dir, 'src', 'components'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>')
    fs.writeFileSync(path.join(dir, 'src', 'components', 'Card.vue'), '<template />')
    const at = (file: string, seconds: number) => fs.utimesSync(file, seconds, seconds)
    const t0 = Math.floor(Date.now() / 1000) - 1000
    at(path.join(dir, 'index.html'), t0)
    at(path.join(dir, 'src', 'components', 'Card.vue'), t0)
    // Directories count too (a deleted file changes its directory).
    at(path.join(dir, 'src', 'components'), t0)
    at(path.join(dir, 'src'), t0)

    expect(check(dir)).toEqual({ status: 1, out: 'admin-ui/dist is missing' })

    fs.mkdirSync(path.join(dir, 'dist'))
    fs.writeFileSync(path.join(dir, 'dist', 'index.html'), '<!doctype html>')
    at(path.join(dir, 'dist', 'index.html'), t0 + 10)
    expect(check(dir)).toEqual({ status: 0, out: 'admin-ui/dist is up to date' })

    // A source deep in src/ changes after the build.
    at(path.join(dir, 'src', 'components', 'Card.vue'), t0 + 20)
    const stale = check(dir)
    expect(stale.status).toBe(1)
    expect(stale.out).toMatch(/^sources changed after the last build/)
  })

  it('is what npm start runs first', () => {
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }
    expect(pkg.scripts.prestart).toBe('node admin-ui/scripts/build-if-stale.mjs')
  })
})
