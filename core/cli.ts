import { parseArgs } from 'node:util'
import { ROLES, type Role } from './contract.js'
import { loadConfig } from './config.js'
import { createJobpost } from './createJobpost.js'
import { JobpostError } from './errors.js'

const USAGE = `Usage:
  npm run cli -- user:create --email EMAIL --password PASSWORD [--role administrator|editor|subscriber]
  npm run cli -- jobs:cleanup --days 30
  npm run cli -- migrate`

/** `npm run cli -- <command>`: administration from the shell, on the configured database. */
async function main(argv: string[]) {
  const [command, ...rest] = argv
  const { values } = parseArgs({
    args: rest,
    options: { email: { type: 'string' }, password: { type: 'string' }, role: { type: 'string' }, days: { type: 'string' } },
  })
  const config = { ...loadConfig(), activePlugins: [], logLevel: 'warn' as const }
  const jobpost = await createJobpost(config, { runWorker: false, serveHttp: false })
  try {
    switch (command) {
      case 'user:create': {
        const role = (values.role ?? 'subscriber') as Role
        if (!values.email || !values.password || !ROLES.includes(role)) throw new Error(USAGE)
        const user = await jobpost.auth.createUser({ email: values.email, password: values.password, roles: [role] })
        console.log(`Created user ${user.id} <${user.email}> with role ${role}.`)
        break
      }
      case 'jobs:cleanup': {
        const deleted = await jobpost.jobs.cleanupOldJobs(Number(values.days ?? 30))
        console.log(`Deleted ${deleted} finished jobs.`)
        break
      }
      case 'migrate':
        console.log('Migrations are up to date.')
        break
      default:
        throw new Error(USAGE)
    }
  } finally {
    await jobpost.close()
  }
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error instanceof JobpostError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : error)
  process.exit(1)
})
