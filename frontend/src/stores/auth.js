import { defineStore } from 'pinia'
import { api } from '../api/admin'
import { configureAuth } from '../api/http'

const KEY = 'genrec.admin.token'

export const useAuth = defineStore('auth', {
  state: () => ({ token: localStorage.getItem(KEY) || '', me: null, checking: false }),
  getters: {
    loggedIn: (s) => Boolean(s.token && s.me),
    isOperator: (s) => s.me?.role === 'operator',
  },
  actions: {
    install(router) {
      configureAuth({
        getToken: () => this.token,
        unauthorized: () => {
          this.logout()
          if (router.currentRoute.value.meta.public !== true) router.push({ name: 'login', query: { expired: '1' } })
        },
      })
    },
    /** Check a token with the API; keeps it only when it is accepted. */
    async login(token) {
      this.token = token.trim()
      this.checking = true
      try {
        this.me = await api.me()
        localStorage.setItem(KEY, this.token)
        return this.me
      } catch (e) {
        this.token = ''
        this.me = null
        throw e
      } finally {
        this.checking = false
      }
    },
    /** On page load: resolve a remembered token (silently dropping it when rejected). */
    async restore() {
      if (!this.token || this.me) return this.loggedIn
      try {
        this.me = await api.me()
      } catch {
        this.logout()
      }
      return this.loggedIn
    },
    logout() {
      this.token = ''
      this.me = null
      localStorage.removeItem(KEY)
    },
  },
})
