import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'

vi.mock('../../src/api/admin', () => ({ api: { me: vi.fn() } }))
const { api } = await import('../../src/api/admin')
const { useAuth } = await import('../../src/stores/auth')
const { http } = await import('../../src/api/http')

describe('auth store', () => {
  beforeEach(() => {
    localStorage.clear()
    setActivePinia(createPinia())
    api.me.mockReset()
  })

  it('keeps a token the API accepts and knows the role', async () => {
    api.me.mockResolvedValue({ name: 'ops', role: 'operator', via: 'token' })
    const auth = useAuth()
    await auth.login('  secret ')
    expect(auth.loggedIn).toBe(true)
    expect(auth.isOperator).toBe(true)
    expect(localStorage.getItem('genrec.admin.token')).toBe('secret')
  })

  it('drops a rejected token', async () => {
    api.me.mockRejectedValue(new Error('401'))
    const auth = useAuth()
    await expect(auth.login('bad')).rejects.toThrow()
    expect(auth.token).toBe('')
    expect(localStorage.getItem('genrec.admin.token')).toBeNull()
  })

  it('a viewer is not an operator', async () => {
    api.me.mockResolvedValue({ name: 'v', role: 'viewer', via: 'jwt' })
    const auth = useAuth()
    await auth.login('v')
    expect(auth.isOperator).toBe(false)
  })

  it('the HTTP client sends the token and signs out on 401', async () => {
    const auth = useAuth()
    const router = { currentRoute: { value: { meta: {} } }, push: vi.fn() }
    auth.install(router)
    auth.token = 'abc'
    auth.me = { name: 'x', role: 'viewer' }
    const seen = []
    const adapter = async (config) => {
      seen.push(config.headers.Authorization)
      const error = new Error('Unauthorized')
      error.response = { status: 401, data: { error: 'unauthorized', field: 'authorization', message: 'invalid token' } }
      error.config = config
      throw error
    }
    await expect(http.get('/api/v1/models', { adapter })).rejects.toThrow()
    expect(seen).toEqual(['Bearer abc'])
    expect(auth.token).toBe('')
    expect(router.push).toHaveBeenCalledWith({ name: 'login', query: { expired: '1' } })
  })
})
