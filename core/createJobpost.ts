import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { Router, type RequestHandler } from 'express'
import { migrateLatest } from '../migrations/index.js'
import { AuthService } from './auth/AuthService.js'
import { OffsetClock, systemClock, type Clock } from './clock.js'
import { startCluster, type Cluster } from './cluster/index.js'
import type { JobpostConfig } from './config.js'
import { createAuthController } from './controllers/AuthController.js'
import { createDatabase, type Database } from './db/createDatabase.js'
import { createHttpApp } from './http/createHttpApp.js'
import { SqlRateBuckets } from './limits/RateBuckets.js'
import { authenticate } from './http/middleware.js'
import { baseOpenApiDocument } from './http/openapi.js'
import { HookRegistry } from './hooks/Hooks.js'
import { coreHooksFor, type PluginHooks } from './hooks/pluginHooks.js'
import { createLogger, type Logger } from './logger.js'
import { loadPlugins, type PluginLoadResult } from './plugins/loadPlugins.js'
import adminUiProvider from './providers/admin-ui-provider/index.js'
import jobsProvider, { type JobsService } from './providers/jobs-provider/index.js'
import type { ProviderContext } from './providers/types.js'
import { RealtimeServer } from './realtime/RealtimeServer.js'
import { RegisterPostTypes } from './registry/RegisterPostTypes.js'
import { createJobStore, type JobStore } from './store/jobs/index.js'
import { PostStore } from './store/PostStore.js'
import { UserStore } from './store/UserStore.js'

export interface CreateJobpostOptions {
  clock?: Clock
  logger?: Logger
  /** Start the job runtime in this process (default: config.runWorker). */
  runWorker?: boolean
  /** Serve HTTP and WebSocket (false for `npm run worker`). */
  serveHttp?: boolean
}

export interface Jobpost {
  config: JobpostConfig
  logger: Logger
  clock: Clock
  db: Database
  store: PostStore
  jobStore: JobStore
  hooks: HookRegistry
  postTypes: RegisterPostTypes
  auth: AuthService
  realtime: RealtimeServer
  jobs: JobsService['jobs']
  processors: JobsService['processors']
  runtime: JobsService['runtime']
  /** Instance heartbeats; on PostgreSQL also cross-instance broadcasts and the database clock. */
  cluster: Cluster
  workflows: JobsService['workflows']
  plugins: PluginLoadResult
  app: express.Express
  server: http.Server
  /** The plugin API for code that is not a plugin (tests, CLI). */
  pluginHooks(owner: string): PluginHooks
  /** Listens on config.port/host (0 = any free port); resolves with the base URL. */
  listen(): Promise<string>
  close(options?: { graceMs?: number }): Promise<void>
}

/**
 * Builds the whole host: database and migrations, store, hooks, auth, core providers, plugins,
 * HTTP + WebSocket. Nothing listens until `listen()`; the runtime starts with it.
 */
export async function createJobpost(config: JobpostConfig, options: CreateJobpostOptions = {}): Promise<Jobpost> {
  // On PostgreSQL several machines share the queue: time follows the database's clock (core/cluster).
  const clock = options.clock ?? (config.database.dialect === 'postgres' ? new OffsetClock() : systemClock)
  const logger = options.logger ?? createLogger(config.logLevel)
  const db = createDatabase(config.database)
  try {
    return await assemble(config, options, { db, clock, logger })
  } catch (error) {
    // A failed start (a migration, a provider, the LISTEN connection) must not leave the pool open.
    await db.close().catch(() => undefined)
    throw error
  }
}

async function assemble(
  config: JobpostConfig,
  options: CreateJobpostOptions,
  { db, clock, logger }: { db: Database; clock: Clock; logger: Logger },
): Promise<Jobpost> {
  await migrateLatest(db.knex)
  const store = new PostStore(db)
  const jobStore = createJobStore(db)
  const hooks = new HookRegistry(logger)
  const postTypes = new RegisterPostTypes()
  const auth = new AuthService({
    users: new UserStore(db),
    clock,
    tokenTtlMs: config.tokenTtlMs,
    loginRateLimit: config.loginRateLimit,
    loginRateWindowMs: config.loginRateWindowMs,
    loginAddressRateLimit: config.loginAddressRateLimit,
    buckets: new SqlRateBuckets({ knex: db.knex, clock }),
    hashConcurrency: config.passwordHashConcurrency,
    hashQueueMax: config.passwordHashQueueMax,
  })
  await auth.seedRoles()
  if (await auth.seedAdministrator(config.adminEmail, config.adminPassword)) {
    logger.info({ email: config.adminEmail }, 'Created the first administrator')
  }
  const realtime = new RealtimeServer({
    auth,
    logger,
    clock,
    allowedOrigins: config.corsOrigins,
    maxConnectionsPerAddress: config.wsMaxConnectionsPerAddress,
  })

  const apiRouters: { path: string; router: Router }[] = [
    { path: '/auth', router: createAuthController(auth, { onLogout: (session) => realtime.closeSession(session) }) },
  ]
  const requireUser = authenticate(auth)
  const pluginRouters = new Map<string, Router>()
  const contextFor = (name: string) => {
    const router = Router()
    pluginRouters.set(name, router)
    return { name, config, logger: logger.child({ plugin: name }), router }
  }
  const registerPostType = (definition: Parameters<RegisterPostTypes['register']>[0]) => void postTypes.register(definition)

  const providerContext: ProviderContext = {
    ...contextFor('jobs-provider'),
    store,
    jobStore,
    clock,
    hookRegistry: hooks,
    auth,
    realtime,
    addApiRouter: (path, router) => apiRouters.push({ path, router }),
  }
  const jobsService = await jobsProvider({ hooks: coreHooksFor('jobs-provider', hooks, registerPostType), context: providerContext })
  adminUiProvider({ hooks: coreHooksFor('admin-ui-provider', hooks, registerPostType) })
  const runWorker = options.runWorker ?? config.runWorker
  // Instance heartbeats; on PostgreSQL also the database clock and cross-instance broadcasts.
  const cluster = await startCluster({
    config,
    store,
    clock,
    hooks,
    realtime,
    jobs: jobsService.jobs,
    runtime: jobsService.runtime,
    logger,
    role: options.serveHttp === false ? 'worker' : 'server',
  })
  const pluginHooks = (owner: string): PluginHooks => ({
    ...coreHooksFor(owner, hooks, registerPostType),
    ...jobsService.hooksFor(owner),
  })

  const plugins = await loadPlugins({
    dir: config.pluginsDir,
    active: config.activePlugins,
    logger,
    argsFor: (slug) => ({ hooks: pluginHooks(slug), context: contextFor(slug) }),
  })
  const pluginsRouter = Router()
  for (const [name, router] of pluginRouters) pluginsRouter.use(`/${name}`, requireUser, router)
  apiRouters.push({ path: '/plugins', router: pluginsRouter })
  await hooks.doAction('init')
  const openapi = await hooks.applyFilters('openapi_document', baseOpenApiDocument())
  const docsRouter = Router()
  // Public, like the login route: it documents the API and holds no data.
  docsRouter.get('/', (_req, res) => void res.json(openapi))
  apiRouters.unshift({ path: '/openapi.json', router: docsRouter })

  const app = createHttpApp({
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    corsOrigins: config.corsOrigins,
    authenticate: requireUser,
    concurrencyPerClient: config.requestConcurrencyPerClient,
    apiRouters,
    mounts: await hooks.applyFilters<{ path: string; handler: RequestHandler | Router }[]>('http_mounts', []),
  })
  const server = http.createServer(app)
  server.keepAliveTimeout = 5000
  realtime.attach(server)

  let closing: Promise<void> | undefined

  return {
    config,
    logger,
    clock,
    db,
    store,
    jobStore,
    hooks,
    postTypes,
    auth,
    realtime,
    jobs: jobsService.jobs,
    processors: jobsService.processors,
    runtime: jobsService.runtime,
    workflows: jobsService.workflows,
    cluster,
    plugins,
    app,
    server,
    pluginHooks,
    async listen() {
      if (options.serveHttp !== false) {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(config.port, config.host, () => resolve())
        })
      }
      if (runWorker) {
        jobsService.runtime.start()
        jobsService.workflows.start()
      }
      const address = server.address() as AddressInfo | null
      return address ? `http://${config.host}:${address.port}` : ''
    },
    close(closeOptions = {}) {
      closing ??= (async () => {
        // Stop taking work first, then let in-flight requests and attempts finish.
        const httpClosed = server.listening
          ? new Promise<void>((resolve) => server.close(() => resolve()))
          : Promise.resolve()
        server.closeIdleConnections()
        await realtime.close()
        await jobsService.runtime.stop({ graceMs: closeOptions.graceMs })
        await jobsService.workflows.stop()
        // Log lines and attempt rows still waiting are written before the database closes.
        await jobsService.logs.close()
        await httpClosed
        await cluster.stop()
        jobsService.jobs.close()
        await jobStore.close()
        await db.close()
      })()
      return closing
    },
  }
}
