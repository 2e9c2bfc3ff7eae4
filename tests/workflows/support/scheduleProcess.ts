/**
 * A second Jobpost process for the schedule tests: opens the SQLite file given in argv[2] with a
 * ManualClock and obeys IPC messages from the test ({ id, cmd: 'schedule' | 'set' | 'tick' | 'close' }).
 * A real process, because two better-sqlite3 connections in one thread cannot wait on each other.
 */
import { ManualClock } from '../../../core/clock.js'
import { testConfig } from '../../../core/config.js'
import { createJobpost } from '../../../core/createJobpost.js'

type Message = { id: number; cmd: 'schedule'; input: any } | { id: number; cmd: 'set'; now: number } | { id: number; cmd: 'tick' } | { id: number; cmd: 'close' }

const clock = new ManualClock(Number(process.argv[3]))
const jobpost = await createJobpost(testConfig({ database: { dialect: 'sqlite', filename: process.argv[2]! }, runWorker: false }), { clock })
const hooks = jobpost.pluginHooks('backup-plugin')

process.on('message', async (message: Message) => {
  try {
    let value: unknown = null
    if (message.cmd === 'schedule') value = await hooks.scheduleJob(message.input)
    else if (message.cmd === 'set') clock.set(message.now)
    else if (message.cmd === 'tick') value = await jobpost.workflows.scheduler.tick()
    else if (message.cmd === 'close') await jobpost.close()
    process.send!({ id: message.id, value })
    if (message.cmd === 'close') process.disconnect()
  } catch (error) {
    process.send!({ id: message.id, error: (error as Error).message })
  }
})
process.send!({ id: 0, value: 'ready' })
