import { Router } from 'express'
import { z } from 'zod'
import type { AuthService } from '../auth/AuthService.js'
import { sendData } from '../http/envelope.js'
import { authenticate, requireJsonBody } from '../http/middleware.js'
import { parseOrThrow } from '../registry/jobInput.js'

const loginSchema = z.strictObject({
  email: z.string().min(1).max(254),
  password: z.string().min(1).max(1024),
})

/** /api/v1/auth: login (public), logout, me, ws-ticket. */
export function createAuthController(auth: AuthService, options: { onLogout?: (session: string) => void } = {}): Router {
  const router = Router()
  const requireUser = authenticate(auth)

  router.post('/login', requireJsonBody, async (req, res) => {
    const body = parseOrThrow(loginSchema, req.body)
    const { token, user } = await auth.login({ ...body, address: req.ip ?? req.socket.remoteAddress ?? 'unknown' })
    sendData(res, { token, user })
  })

  router.post('/logout', requireUser, async (req, res) => {
    const session = await auth.logout(req.token!)
    options.onLogout?.(session)
    sendData(res, { loggedOut: true })
  })

  router.get('/me', requireUser, (req, res) => {
    sendData(res, { user: req.user })
  })

  router.post('/ws-ticket', requireUser, async (req, res) => {
    sendData(res, await auth.issueWsTicket(req.user!, req.token!), 201)
  })

  return router
}
