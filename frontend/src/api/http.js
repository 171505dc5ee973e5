import axios from 'axios'

// One axios instance for the admin API (same origin: the admin API serves this app).
// The token getter and the 401 hook are injected by the auth store, which keeps this module
// free of Pinia so it can be unit-tested alone.
export const http = axios.create({ baseURL: '', timeout: 20000 })

let tokenGetter = () => null
let onUnauthorized = () => {}

export function configureAuth({ getToken, unauthorized }) {
  tokenGetter = getToken
  onUnauthorized = unauthorized
}

http.interceptors.request.use((config) => {
  const token = tokenGetter()
  if (token) config.headers.Authorization = `Bearer ${token}`
  return config
})

http.interceptors.response.use(
  (resp) => resp,
  (error) => {
    if (error.response?.status === 401) onUnauthorized()
    return Promise.reject(error)
  },
)

/** A one-line, human message for any failed request: the API's {error, field, message} when present. */
export function errorMessage(error) {
  const body = error?.response?.data
  if (body && typeof body === 'object' && body.message) {
    return body.field ? `${body.field}: ${body.message}` : body.message
  }
  if (error?.response) return `HTTP ${error.response.status}`
  if (error?.code === 'ECONNABORTED') return 'the request timed out'
  return error?.message || String(error)
}
