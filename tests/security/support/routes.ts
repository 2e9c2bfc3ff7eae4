import type { Express } from 'express'

export interface RouteInfo {
  method: string
  /** Full path as mounted, e.g. `/api/v1/jobs/:jobId/cancel`. */
  path: string
}

interface LayerLike {
  rawPath?: unknown
  route?: { path: unknown; methods: Record<string, boolean> }
  handle?: { stack?: LayerLike[] }
}

/**
 * Every route registered on the app, found by walking Express 5's router stacks (mounted routers
 * included), so routes added later by anyone are covered without editing the test.
 */
export function listRoutes(app: Express): RouteInfo[] {
  const routes: RouteInfo[] = []
  const join = (base: string, path: string) => (base + (path === '/' ? '' : path)).replace(/\/+/g, '/') || '/'
  const walk = (stack: LayerLike[], base: string) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = ([] as unknown[]).concat(layer.route.path)
        for (const path of paths) {
          if (typeof path !== 'string') continue
          for (const [method, on] of Object.entries(layer.route.methods)) {
            if (on && method !== '_all') routes.push({ method: method.toUpperCase(), path: join(base, path) })
          }
        }
      } else if (layer.handle?.stack) {
        const mount = typeof layer.rawPath === 'string' ? layer.rawPath : ''
        walk(layer.handle.stack, join(base, mount === '/' ? '' : mount))
      }
    }
  }
  const router = (app as unknown as { router: { stack: LayerLike[] } }).router
  walk(router.stack, '')
  const seen = new Set<string>()
  return routes.filter((route) => {
    const key = `${route.method} ${route.path}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}
