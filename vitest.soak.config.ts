import { defineConfig } from 'vitest/config'

/** `npm run test:soak`: the long soak under tests/soak/ (size it with SOAK_JOBS and SOAK_RESTARTS). */
export default defineConfig({
  test: {
    include: ['tests/soak/**/*.test.ts'],
    testTimeout: 4 * 3600_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
    // --expose-gc lets the RSS check measure after a full collection.
    execArgv: ['--expose-gc'],
    reporters: ['default'],
  },
})
