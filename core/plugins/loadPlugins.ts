import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { coerceError } from '../errors.js'
import type { PluginHooks, PluginModule } from '../hooks/pluginHooks.js'
import { inPlugin } from '../hooks/pluginScope.js'
import type { Logger } from '../logger.js'

export interface LoadPluginsOptions {
  dir: string
  active: string[]
  logger: Logger
  /** The `{ hooks, context }` a plugin receives, built per plugin. */
  argsFor(slug: string): { hooks: PluginHooks; context: Parameters<PluginModule>[0]['context'] }
}

export interface PluginLoadResult {
  loaded: string[]
  failed: { slug: string; error: string }[]
}

const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/

/** Imports and starts each active plugin once; a broken plugin is logged and skipped. */
export async function loadPlugins(options: LoadPluginsOptions): Promise<PluginLoadResult> {
  const result: PluginLoadResult = { loaded: [], failed: [] }
  // A slug listed twice (ACTIVE_PLUGINS=a,b,a) loads once: a second start would register
  // every action, processor and route of the plugin twice.
  const slugs = [...new Set(options.active)]
  if (slugs.length < options.active.length) {
    options.logger.warn({ active: options.active }, 'A plugin is listed more than once in ACTIVE_PLUGINS; each loads once')
  }
  for (const slug of slugs) {
    try {
      if (!SLUG.test(slug)) throw new Error('A plugin slug must be lowercase letters, digits and -.')
      const file = ['index.ts', 'index.js', 'index.mjs']
        .map((name) => path.join(options.dir, slug, name))
        .find((candidate) => fs.existsSync(candidate))
      if (!file) throw new Error(`No index.ts or index.js in ${path.join(options.dir, slug)}.`)
      // In the plugin's scope: faults its module, timers and promises raise later carry its name
      // and never end the process (core/hooks/pluginScope.ts).
      const module = (await inPlugin(slug, () => import(pathToFileURL(file).href))) as { default?: unknown }
      if (typeof module.default !== 'function') throw new Error('A plugin must default-export a function.')
      await inPlugin(slug, () => (module.default as PluginModule)(options.argsFor(slug)))
      result.loaded.push(slug)
      options.logger.info({ plugin: slug }, `Plugin "${slug}" loaded`)
    } catch (thrown) {
      const error = coerceError(thrown)
      result.failed.push({ slug, error: error.message })
      options.logger.error({ plugin: slug, err: error }, `Plugin "${slug}" failed to load and was skipped: ${error.message}`)
    }
  }
  return result
}
