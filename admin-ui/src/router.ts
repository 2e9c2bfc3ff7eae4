import { createRouter, createWebHistory, type Router } from 'vue-router'
import type { Auth } from './composables/useAuth'

/** Routes under /admin/; every page but the login page needs a session. */
export function createAdminRouter(auth: Auth): Router {
  const router = createRouter({
    history: createWebHistory('/admin/'),
    routes: [
      { path: '/login', name: 'login', component: () => import('./views/LoginView.vue'), meta: { public: true } },
      {
        path: '/',
        component: () => import('./views/AdminShell.vue'),
        children: [
          { path: '', name: 'dashboard', component: () => import('./views/DashboardView.vue') },
          { path: 'jobs', name: 'jobs', component: () => import('./views/JobsView.vue') },
          { path: 'queue', name: 'queue', component: () => import('./views/QueueView.vue') },
          { path: 'schedules', name: 'schedules', component: () => import('./views/SchedulesView.vue') },
          { path: 'workers', name: 'workers', component: () => import('./views/WorkersView.vue') },
        ],
      },
      { path: '/:pathMatch(.*)*', redirect: '/' },
    ],
  })

  let restored = false
  router.beforeEach(async (to) => {
    if (to.meta.public) return auth.isAuthenticated.value && to.name === 'login' ? '/' : true
    if (!auth.isAuthenticated.value) return { name: 'login', query: { redirect: to.fullPath } }
    if (!restored || !auth.user.value) {
      // A token from sessionStorage (a reload): check it is still good before showing anything.
      restored = await auth.restore().catch(() => false)
      if (!restored) {
        await auth.logout().catch(() => undefined)
        return { name: 'login', query: { redirect: to.fullPath } }
      }
    }
    return true
  })
  return router
}
