import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

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
          exclude: ['tests/soak/**', 'tests/admin-ui/**', 'node_modules/**'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          pool: 'forks',
          maxWorkers: 2,
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
        },
      },
    ],
  },
})
