import { getCurrentScope, onScopeDispose, shallowRef, type Ref } from 'vue'

/** Whether a media query matches, kept current; false where there is no matchMedia (tests). */
export function useMediaQuery(query: string): Readonly<Ref<boolean>> {
  const list = globalThis.matchMedia?.(query)
  const matches = shallowRef(list?.matches ?? false)
  if (list) {
    const onChange = (event: MediaQueryListEvent) => (matches.value = event.matches)
    list.addEventListener('change', onChange)
    if (getCurrentScope()) onScopeDispose(() => list.removeEventListener('change', onChange))
  }
  return matches
}

/** The width from which the stack has a column of its own beside the page (styles.css agrees). */
export const WIDE_QUERY = '(min-width: 1200px)'
/** Below this width the jobs table becomes a list of cards and the top bar a menu. */
export const NARROW_QUERY = '(max-width: 760px)'

/** A clock for relative times: `now` moves every `intervalMs` (default 15 s), and stops with the scope. */
export function useNow(intervalMs = 15_000): Readonly<Ref<number>> {
  const now = shallowRef(Date.now())
  const timer = setInterval(() => (now.value = Date.now()), intervalMs)
  if (getCurrentScope()) onScopeDispose(() => clearInterval(timer))
  return now
}

export type ThemeChoice = 'system' | 'light' | 'dark'
const THEME_KEY = 'jobpost.theme'

function readChoice(): ThemeChoice {
  try {
    const stored = globalThis.localStorage?.getItem(THEME_KEY)
    return stored === 'light' || stored === 'dark' ? stored : 'system'
  } catch {
    return 'system'
  }
}

/** Applies a theme choice to <html data-theme>; 'system' follows prefers-color-scheme (styles.css). */
export function applyTheme(choice: ThemeChoice) {
  const root = globalThis.document?.documentElement
  if (!root) return
  if (choice === 'system') delete root.dataset.theme
  else root.dataset.theme = choice
}

const theme = shallowRef<ThemeChoice>(readChoice())
applyTheme(theme.value)

/** The colour theme: from the system by default, or chosen (kept in localStorage; no secret there). */
export function useTheme() {
  const prefersDark = useMediaQuery('(prefers-color-scheme: dark)')
  return {
    theme,
    prefersDark,
    set(choice: ThemeChoice) {
      theme.value = choice
      applyTheme(choice)
      try {
        if (choice === 'system') globalThis.localStorage?.removeItem(THEME_KEY)
        else globalThis.localStorage?.setItem(THEME_KEY, choice)
      } catch {
        // Storage refused (private mode): the choice lasts for this page.
      }
    },
  }
}
