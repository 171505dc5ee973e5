import { createRouter, createWebHashHistory } from 'vue-router'
import { useAuth } from './stores/auth'

// Hash history: the admin API serves dist/ as plain static files, no server-side fallback needed.
// Pages are lazy chunks, so ECharts and three.js load only with the pages that draw them.
export const routes = [
  { path: '/login', name: 'login', component: () => import('./pages/LoginPage.vue'), meta: { public: true, bare: true, title: 'Sign in' } },
  { path: '/shop', name: 'shop', component: () => import('./pages/ShopPage.vue'), meta: { public: true, bare: true, title: 'Shop' } },
  { path: '/', name: 'dashboard', component: () => import('./pages/DashboardPage.vue'), meta: { title: 'Dashboard', icon: 'dashboard' } },
  { path: '/catalogue', name: 'catalogue', component: () => import('./pages/CataloguePage.vue'), meta: { title: 'Catalogue', icon: 'catalogue' } },
  { path: '/users', name: 'users', component: () => import('./pages/UsersPage.vue'), meta: { title: 'User inspector', icon: 'users' } },
  { path: '/semantic-ids', name: 'semantic-ids', component: () => import('./pages/SemanticIdsPage.vue'), meta: { title: 'Semantic IDs', icon: 'semantic' } },
  { path: '/embeddings', name: 'embeddings', component: () => import('./pages/EmbeddingsPage.vue'), meta: { title: 'Embedding space', icon: 'embeddings' } },
  { path: '/models', name: 'models', component: () => import('./pages/ModelsPage.vue'), meta: { title: 'Models', icon: 'models' } },
  { path: '/:rest(.*)*', redirect: '/' },
]

export function createAppRouter(history = createWebHashHistory()) {
  const router = createRouter({ history, routes })
  router.beforeEach(async (to) => {
    if (to.meta.public) return true
    const auth = useAuth()
    if (await auth.restore()) return true
    return { name: 'login', query: { next: to.fullPath } }
  })
  router.afterEach((to) => {
    document.title = `${to.meta.title || 'genrec'} · genrec admin`
  })
  return router
}
