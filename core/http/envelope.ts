import type { Response } from 'express'
import type { ApiError } from '../contract.js'

export function sendData<T>(res: Response, data: T, status = 200): void {
  res.status(status).json({ success: true, data })
}

export function sendList<T>(
  res: Response,
  data: T[],
  meta: { total: number; limit: number; offset: number; totalCapped?: boolean; nextCursor?: string },
): void {
  res.status(200).json({ success: true, data, meta })
}

export function sendError(res: Response, status: number, error: ApiError): void {
  res.status(status).json({ success: false, error })
}
