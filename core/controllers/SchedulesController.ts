import { Router } from 'express'
import { z } from 'zod'
import type { AuthService } from '../auth/AuthService.js'
import { sendData, sendList } from '../http/envelope.js'
import { authenticate, requireCapability } from '../http/middleware.js'
import { parseOrThrow } from '../registry/jobInput.js'
import type { Scheduler } from '../workflows/schedules.js'

const intParam = (name: string, min: number, max: number) =>
  z
    .string({ error: `${name} must be given once` })
    .regex(/^\d{1,9}$/, `${name} must be an integer from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be an integer from ${min} to ${max}`)

const listQuerySchema = z.strictObject({
  limit: intParam('limit', 1, 500).optional(),
  offset: intParam('offset', 0, 1_000_000_000).optional(),
})

/** /api/v1/schedules: the cron schedules (manage_jobs only; they run jobs as their plugin). */
export function createSchedulesController(options: { auth: AuthService; scheduler: Scheduler }): Router {
  const router = Router()
  router.use(authenticate(options.auth), requireCapability('manage_jobs'))

  router.get('/', async (req, res) => {
    const { limit = 100, offset = 0 } = parseOrThrow(listQuerySchema, req.query)
    const { schedules, total } = await options.scheduler.list({ limit, offset })
    sendList(res, schedules, { total, limit, offset })
  })

  router.get('/:name', async (req, res) => {
    sendData(res, await options.scheduler.get(String(req.params.name)))
  })

  return router
}
