import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

const LOAD_TESTS = ['tests/security/abuse-limits.test.ts', 'tests/security/abuse-postgres.test.ts']

export default defineConfig({
  test: {
    // Two cores: more workers only fight over them (and over the shared PostgreSQL).
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      {
        // The server, and the admin UI end to end in headless Chromium (tests/e2e).
        test: {
          name: 'node',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/soak/**', 'tests/admin-ui/**', 'node_modules/**', ...LOAD_TESTS],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          pool: 'forks',
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Tests that time a server's answers under attack (≤ 200 ms): they run last, one file at a
        // time, so that what they measure is the server under attack, not the rest of the suite.
        test: {
          name: 'load',
          include: LOAD_TESTS,
          testTimeout: 120_000,
          hookTimeout: 60_000,
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // The admin UI's components and composables, mounted in happy-dom against a real server.
        plugins: [vue()],
        test: {
          name: 'admin-ui',
          include: ['tests/admin-ui/**/*.test.ts'],
          environment: 'happy-dom',
          testTimeout: 30_000,
          hookTimeout: 30_000,
          pool: 'forks',
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
    ],
  },
})
