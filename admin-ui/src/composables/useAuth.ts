import { computed, inject, readonly, shallowRef, type InjectionKey } from 'vue'
import { ApiRequestError, createApiClient, type ApiClient } from '../api/client'
import type { PublicUser } from '../contract'

const TOKEN_KEY = 'jobpost.token'

export interface AuthOptions {
  /** Where the token survives a reload of the tab (default sessionStorage: gone with the tab). */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>
  baseUrl?: string
  fetch?: typeof fetch
  /** Called when the server says the session is over (401), after the local state is cleared. */
  onSignedOut?: () => void
}

/**
 * The session: the bearer token (kept in sessionStorage, never in localStorage or a cookie), the
 * user, and the API client that carries the token. A 401 from any call clears the session.
 */
export function createAuth(options: AuthOptions = {}) {
  const storage = options.storage ?? globalThis.sessionStorage
  const token = shallowRef<string | null>(storage.getItem(TOKEN_KEY))
  const user = shallowRef<PublicUser | null>(null)

  function clear() {
    token.value = null
    user.value = null
    storage.removeItem(TOKEN_KEY)
  }

  const api: ApiClient = createApiClient({
    baseUrl: options.baseUrl,
    fetch: options.fetch,
    getToken: () => token.value,
    onUnauthorized: () => {
      if (token.value === null) return
      clear()
      options.onSignedOut?.()
    },
  })

  return {
    token: readonly(token),
    user: readonly(user),
    isAuthenticated: computed(() => token.value !== null),
    api,
    can: (capability: PublicUser['capabilities'][number]) =>
      user.value?.capabilities.includes(capability) || user.value?.capabilities.includes('manage_jobs') || false,
    async login(email: string, password: string) {
      const session = await api.login(email, password)
      token.value = session.token
      user.value = session.user
      storage.setItem(TOKEN_KEY, session.token)
      return session.user
    },
    /** Loads the user of a stored token; false when the token is no longer valid. */
    async restore(): Promise<boolean> {
      if (!token.value) return false
      try {
        user.value = await api.me()
        return true
      } catch (error) {
        if (error instanceof ApiRequestError && error.isAuthFailure) return false
        throw error
      }
    },
    async logout() {
      try {
        if (token.value) await api.logout()
      } finally {
        clear()
      }
    },
  }
}

export type Auth = ReturnType<typeof createAuth>
export const AUTH_KEY: InjectionKey<Auth> = Symbol('jobpost.auth')

/** The app's session, provided once by main.ts (or by a test's `global.provide`). */
export function useAuth(): Auth {
  const auth = inject(AUTH_KEY, null)
  if (!auth) throw new Error('useAuth() needs createAuth() provided under AUTH_KEY')
  return auth
}
