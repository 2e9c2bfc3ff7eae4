import { Router } from 'express'
import type { AuthService } from '../auth/AuthService.js'
import { authenticate, requireCapability } from '../http/middleware.js'
import type { JobMetrics } from './JobMetrics.js'

/**
 * GET /metrics: the Prometheus text format. Auth: `Authorization: Bearer <token>` of a user with
 * read_jobs (editors and administrators), like every other route; 401/403 in the JSON envelope
 * otherwise. Give the scraper its own editor account and token.
 */
export function createMetricsRouter(options: { auth: AuthService; metrics: JobMetrics }): Router {
  const router = Router()
  router.use(authenticate(options.auth), requireCapability('read_jobs'))
  router.get('/', async (_req, res) => {
    const body = await options.metrics.metrics()
    res.setHeader('Content-Type', options.metrics.contentType)
    res.setHeader('Cache-Control', 'no-store')
    res.status(200).send(body)
  })
  return router
}
