import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

/** The admin UI is served by the Jobpost server at /admin (core/providers/admin-ui-provider). */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/admin/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Under the server's CSP (script-src 'self') nothing may be inlined as a script.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    // `vite --config admin-ui/vite.config.ts` for development against `npm start`.
    proxy: { '/api': 'http://127.0.0.1:3001', '/ws': { target: 'ws://127.0.0.1:3001', ws: true } },
  },
})
