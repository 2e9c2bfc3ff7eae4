#!/usr/bin/env node
// `npm start` runs this first (package.json "prestart"): the admin UI is built only when
// admin-ui/dist is missing or older than any of its sources, so a start with an up-to-date build
// costs a few file stats instead of a Vite build. `--check` only reports (exit 1 when stale).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

// JOBPOST_ADMIN_UI_DIR: another copy of admin-ui/ (the script's test uses one).
const adminDir = path.resolve(process.env.JOBPOST_ADMIN_UI_DIR ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'))
const root = path.resolve(adminDir, '..')
const builtMarker = path.join(adminDir, 'dist', 'index.html')
/** What the build reads: the app's sources, its config, and the contract it imports. */
const sources = [
  path.join(adminDir, 'src'),
  path.join(adminDir, 'index.html'),
  path.join(adminDir, 'vite.config.ts'),
  path.join(adminDir, 'tsconfig.json'),
  path.join(root, 'core', 'contract.ts'),
  path.join(root, 'core', 'registry', 'queueOrder.ts'),
  path.join(root, 'package-lock.json'),
]

function newestMtime(target) {
  let stat
  try {
    stat = fs.statSync(target)
  } catch {
    return 0
  }
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = stat.mtimeMs
  for (const entry of fs.readdirSync(target)) newest = Math.max(newest, newestMtime(path.join(target, entry)))
  return newest
}

export function buildState() {
  let built = 0
  try {
    built = fs.statSync(builtMarker).mtimeMs
  } catch {
    return { stale: true, reason: 'admin-ui/dist is missing' }
  }
  const newest = Math.max(...sources.map(newestMtime))
  return newest > built
    ? { stale: true, reason: `sources changed after the last build (${new Date(newest).toISOString()} > ${new Date(built).toISOString()})` }
    : { stale: false, reason: 'admin-ui/dist is up to date' }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (isMain) {
  const { stale, reason } = buildState()
  if (process.argv.includes('--check')) {
    console.log(reason)
    process.exit(stale ? 1 : 0)
  }
  if (!stale) {
    console.log(`admin UI: ${reason}, no build needed`)
  } else {
    console.log(`admin UI: ${reason}; building…`)
    const result = spawnSync(process.execPath, [path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', path.join(adminDir, 'vite.config.ts')], {
      cwd: root,
      stdio: 'inherit',
    })
    process.exit(result.status ?? 1)
  }
}
