import type { Router } from 'express'
import type { Clock } from '../clock.js'
import type { AuthService } from '../auth/AuthService.js'
import type { HookRegistry } from '../hooks/Hooks.js'
import type { CoreHooks, PluginContext } from '../hooks/pluginHooks.js'
import type { RealtimeServer } from '../realtime/RealtimeServer.js'
import type { JobStore } from '../store/jobs/JobStore.js'
import type { PostStore } from '../store/PostStore.js'

/** What a core provider gets besides a plugin's context: the host's services. */
export interface ProviderContext extends PluginContext {
  store: PostStore
  /** The job queue's storage (typed rows, counters, prepared hot paths). */
  jobStore: JobStore
  clock: Clock
  hookRegistry: HookRegistry
  auth: AuthService
  realtime: RealtimeServer
  /** Mounts a router under /api/v1 (before the 404 fallback). */
  addApiRouter(path: string, router: Router): void
}

export type Provider<T> = (args: { hooks: CoreHooks; context: ProviderContext }) => T | Promise<T>
