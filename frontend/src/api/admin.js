import { http } from './http'

const get = (url, params) => http.get(url, { params }).then((r) => r.data)
const post = (url, body) => http.post(url, body).then((r) => r.data)
const put = (url, body) => http.put(url, body).then((r) => r.data)
const enc = encodeURIComponent

export const api = {
  me: () => get('/api/v1/auth/me'),
  overview: () => get('/api/v1/overview'),
  latency: (hours = 24) => get('/api/v1/analytics/latency', { hours }),
  ctr: (hours = 24) => get('/api/v1/analytics/ctr', { hours }),
  coverage: (hours = 24) => get('/api/v1/analytics/coverage', { hours }),
  versions: (hours = 24) => get('/api/v1/analytics/versions', { hours }),
  ab: (hours = 24, margin = 0) => get('/api/v1/analytics/ab', { hours, margin }),
  live: () => get('/api/v1/metrics/live'),
  pipelineLag: () => get('/api/v1/pipeline/lag'),
  items: (params) => get('/api/v1/items', params),
  item: (id) => get(`/api/v1/items/${enc(id)}`),
  categories: () => get('/api/v1/categories'),
  upsertItem: (item) => post('/api/v1/items', item),
  users: (limit = 50) => get('/api/v1/users', { limit }),
  user: (id) => get(`/api/v1/users/${enc(id)}`),
  userRecommendations: (id, count = 10) => get(`/api/v1/users/${enc(id)}/recommendations`, { count }),
  sendInteraction: (id, body) => post(`/api/v1/users/${enc(id)}/interactions`, body),
  semanticLevel: (prefix, items = 12) => get('/api/v1/semantic-ids', { prefix: prefix.join(','), items }),
  projection: (limit = 1500, category) => get('/api/v1/embeddings/projection', { limit, category }),
  models: () => get('/api/v1/models'),
  setTraffic: (version, weight) => put(`/api/v1/models/${enc(version)}/traffic`, { weight }),
  setStatus: (version, status) => put(`/api/v1/models/${enc(version)}/status`, { status }),
  promote: (version) => post(`/api/v1/models/${enc(version)}/promote`),
  rollback: () => post('/api/v1/models/rollback'),
  shopRecommendations: (userId, count = 8) => get('/api/v1/shop/recommendations', { user_id: userId, count }),
  shopFeedback: (body) => post('/api/v1/shop/feedback', body),
}
