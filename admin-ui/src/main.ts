import { createApp } from 'vue'
import App from './App.vue'
import { AUTH_KEY, createAuth } from './composables/useAuth'
import { createAdminRouter } from './router'
import './styles.css'

let router: ReturnType<typeof createAdminRouter> | undefined
const auth = createAuth({
  // The session ended on the server (expired or revoked token): back to the login page.
  onSignedOut: () => void router?.replace({ name: 'login', query: { redirect: router.currentRoute.value.fullPath } }),
})
router = createAdminRouter(auth)

createApp(App).provide(AUTH_KEY, auth).use(router).mount('#app')
