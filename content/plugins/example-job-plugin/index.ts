import type { Request, Response } from 'express'
import type { PluginModule } from '../../../core/hooks/pluginHooks.js'
import { requireCapability } from '../../../core/http/middleware.js'

/**
 * The plugin to copy. It shows both kinds of job:
 * - a *tracked* job that the plugin drives itself (start, progress, complete or fail), and
 * - a *queued* job run by a registered processor, with retries handled by the runtime.
 *
 * Nothing runs on its own: an administrator triggers the demo jobs with
 *   POST /api/v1/plugins/example-job-plugin/run   {"kind": "backup" | "failing" | "import"}
 */

const BACKUP_ICON = `<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M21 16V8a2 2 0 0 0-1-1.73l-7-4a2 2 0 0 0-2 0l-7 4A2 2 0 0 0 3 8v8a2 2 0 0 0 1 1.73l7 4a2 2 0 0 0 2 0l7-4A2 2 0 0 0 21 16z"/></svg>`

/** Waits `ms`, or rejects as soon as `signal` aborts (cancel, timeout, shutdown). */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })

const examplePlugin: PluginModule = ({ hooks, context }) => {
  const stepMs = Number(process.env.EXAMPLE_JOB_STEP_MS ?? 300)

  // A processor: jobs of type "example-import" are run by the runtime, with 3 attempts.
  hooks.registerJobProcessor(
    'example-import',
    async (job, { signal, updateProgress }) => {
      const total = Number((job.data as { items?: number } | null)?.items ?? 10)
      for (let i = 1; i <= total; i++) {
        await sleep(stepMs / 2, signal)
        await updateProgress(Math.round((i / total) * 100), { imported: i, total })
      }
      return { imported: total }
    },
    { concurrency: 2, maxAttempts: 3 },
  )

  /** A tracked job with a custom icon: starts, reports progress with metadata, completes. */
  async function runBackup(createdBy: number) {
    const job = await hooks.createJob({
      name: 'Backup Database',
      description: 'Creating a full database backup',
      type: 'backup',
      iconSvg: BACKUP_ICON,
      metadata: { backupType: 'full', compression: true },
      createdBy,
    })
    void (async () => {
      try {
        await job.start()
        for (let progress = 10; progress <= 100; progress += 10) {
          await sleep(stepMs, job.signal)
          await job.updateProgress(progress, { currentTable: `table_${progress}`, bytesProcessed: progress * 1024 })
        }
        await job.complete({ backupFile: '/backups/db.sql.gz', fileSize: '125MB' })
      } catch (error) {
        if (!job.signal.aborted) await job.fail(error instanceof Error ? error.message : String(error)).catch(() => undefined)
      }
    })()
    return job.get()
  }

  /** A tracked job that fails part-way, to show how errors reach the admin. */
  async function runFailing(createdBy: number) {
    const job = await hooks.createJob({ name: 'Sync Remote Data', type: 'sync', description: 'Syncing with a remote API', createdBy })
    void (async () => {
      try {
        await job.start()
        await sleep(stepMs, job.signal)
        await job.updateProgress(30)
        throw new Error('API timeout: the remote server did not answer')
      } catch (error) {
        await job.fail(error instanceof Error ? error.message : String(error)).catch(() => undefined)
      }
    })()
    return job.get()
  }

  context.router.post('/run', requireCapability('manage_jobs'), async (req: Request, res: Response) => {
    const kind = (req.body as { kind?: unknown } | undefined)?.kind ?? 'backup'
    const user = req.user!.id
    let job
    if (kind === 'backup') job = await runBackup(user)
    else if (kind === 'failing') job = await runFailing(user)
    else if (kind === 'import') job = await hooks.enqueueJob({ type: 'example-import', name: 'Import Products', data: { items: 10 }, createdBy: user })
    else {
      res.status(400).json({ success: false, error: { code: 'VALIDATION_FAILED', message: 'kind must be backup, failing or import.' } })
      return
    }
    res.status(201).json({ success: true, data: job })
  })
}

export default examplePlugin
