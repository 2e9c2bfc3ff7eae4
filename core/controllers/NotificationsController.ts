import { Router } from 'express'
import { z } from 'zod'
import type { AuthService } from '../auth/AuthService.js'
import { canSeeAllJobs } from '../auth/capabilities.js'
import type { Clock } from '../clock.js'
import { sendData, sendList } from '../http/envelope.js'
import { authenticate, requireJsonBody } from '../http/middleware.js'
import { parseOrThrow } from '../registry/jobInput.js'
import { NOTIFY_COMPLETED_MS, NOTIFY_FAILED_MS, NOTIFY_UNTIL_DISMISSED, type RegisterJobs } from '../registry/RegisterJobs.js'
import type { NotificationStore } from '../store/NotificationStore.js'
import { visibleJob } from './jobAccess.js'

/** The stack shows at most this many cards' worth of jobs (API.md). */
const MAX_NOTIFICATIONS = 500
const emptyBodySchema = z.union([z.strictObject({}), z.undefined()])

export interface NotificationsControllerOptions {
  auth: AuthService
  jobs: RegisterJobs
  dismissals: NotificationStore
  clock: Clock
}

/**
 * /api/v1/notifications: what the caller's notification stack shows, and dismissals kept per
 * user on the server (so every tab and device of the user agrees).
 */
export function createNotificationsController(options: NotificationsControllerOptions): Router {
  const { auth, jobs, dismissals, clock } = options
  const router = Router()
  router.use(authenticate(auth))

  router.get('/', async (req, res) => {
    parseOrThrow(z.strictObject({}), req.query)
    const user = req.user!
    const feed = await jobs.notifications({
      userId: user.id,
      createdBy: canSeeAllJobs(user) ? undefined : user.id,
      limit: MAX_NOTIFICATIONS,
    })
    sendList(res, feed.jobs, { total: feed.total, limit: MAX_NOTIFICATIONS, offset: 0 })
  })

  router.post('/dismiss-finished', requireJsonBody, async (req, res) => {
    parseOrThrow(emptyBodySchema, req.body)
    const user = req.user!
    const now = clock.now()
    const createdBy = canSeeAllJobs(user) ? undefined : user.id
    await dismissals.dismissFinished({ userId: user.id, createdBy, since: now - NOTIFY_FAILED_MS, statuses: NOTIFY_UNTIL_DISMISSED, now })
    await dismissals.dismissFinished({ userId: user.id, createdBy, since: now - NOTIFY_COMPLETED_MS, statuses: ['completed'], now })
    sendData(res, { dismissed: true })
  })

  router.post('/:jobId/dismiss', requireJsonBody, async (req, res) => {
    parseOrThrow(emptyBodySchema, req.body)
    const record = await visibleJob(jobs, req)
    await dismissals.dismiss(req.user!.id, [record.id], clock.now())
    sendData(res, { dismissed: true, jobId: record.jobId })
  })

  return router
}
