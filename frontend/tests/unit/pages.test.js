import { describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import Antd from 'ant-design-vue'

vi.mock('../../src/api/admin', () => ({
  api: {
    models: vi.fn(async () => ({
      traffic_split: { v2: 0.1, v1: 0.9 },
      versions: [
        { version: 'v2', status: 'canary', traffic_weight: 0.1, traffic_share: 0.1, metrics: { 'recall@10': 0.3 } },
        { version: 'v1', status: 'production', traffic_weight: 1, traffic_share: 0.9, metrics: { 'recall@10': 0.25 } },
      ],
    })),
    setTraffic: vi.fn(async () => ({})),
    ab: vi.fn(async () => ({
      canary_share: 0.1,
      ctr: {
        production: { lists: 900, users: 900, rate: 0.08, interval: [0.063, 0.099], versions: ['v1'] },
        canary: { lists: 100, users: 100, rate: 0.15, interval: [0.093, 0.233], versions: ['v2'] },
        better: 'canary', difference: 0.07, difference_interval: [0.0, 0.14], p_value: 0.01,
      },
      conversion: {
        production: { lists: 900, users: 900, rate: 0.01, interval: [0.005, 0.02], versions: ['v1'] },
        canary: { lists: 100, users: 100, rate: 0.02, interval: [0.006, 0.07], versions: ['v2'] },
      },
      timeline: [],
    })),
    shopRecommendations: vi.fn(),
    shopFeedback: vi.fn(async () => ({ event_id: 'e1' })),
  },
}))
vi.mock('vue-router', () => ({
  useRoute: () => ({ query: { user: 'u1' } }),
  useRouter: () => ({ replace: vi.fn(), push: vi.fn() }),
}))
vi.mock('../../src/components/EChart.vue', () => ({ default: { template: '<div class="chart" />' } }))
const { api } = await import('../../src/api/admin')
const { useAuth } = await import('../../src/stores/auth')
const ModelsPage = (await import('../../src/pages/ModelsPage.vue')).default
const ShopPage = (await import('../../src/pages/ShopPage.vue')).default

function setup(role) {
  const pinia = createPinia()
  setActivePinia(pinia)
  const auth = useAuth()
  auth.token = 't'
  auth.me = { name: 'x', role }
  return { global: { plugins: [Antd, pinia], stubs: { 'router-link': { template: '<a><slot /></a>' } } } }
}

describe('ModelsPage', () => {
  it('lists versions with offline metrics and sets a canary weight (operator)', async () => {
    const w = mount(ModelsPage, setup('operator'))
    await flushPromises()
    expect(w.text()).toContain('recall@10')
    expect(w.text()).toContain('0.3000')
    const set = w.find('[data-test=set-weight-v2]')
    expect(set.text()).toContain('Set 10%')
    await set.trigger('click')
    await flushPromises()
    expect(api.setTraffic).toHaveBeenCalledWith('v2', 0.1)
  })
  it('shows the live A/B: both arms, their intervals and the verdict', async () => {
    const w = mount(ModelsPage, setup('viewer'))
    await flushPromises()
    expect(api.ab).toHaveBeenCalledWith(24)
    expect(w.find('[data-test=ab-verdict]').text()).toContain('Canary is better')
    expect(w.find('[data-test=ab-table]').text()).toContain('15.00% [9.30%, 23.30%]')
  })
  it('is read-only for a viewer', async () => {
    const w = mount(ModelsPage, setup('viewer'))
    await flushPromises()
    expect(w.find('[data-test=rollback]').attributes('disabled')).toBeDefined()
    expect(w.find('[data-test=set-weight-v2]').attributes('disabled')).toBeDefined()
  })
})

describe('ShopPage', () => {
  it('shows cards and sends a like as feedback with the request id', async () => {
    api.shopRecommendations.mockResolvedValue({
      request_id: 'r1', user_id: 'u1', served_by: 'popularity', algorithm_version: 'fallback',
      items: [{ item_id: 'I1', title: 'One', description: 'd', score: 1, reason: 'Popular', is_new: false, category_path: 'A|B' }],
    })
    const w = mount(ShopPage, setup('viewer'))
    await flushPromises()
    expect(w.findAll('[data-test=rec-card]')).toHaveLength(1)
    expect(w.find('[data-test=served-by]').text()).toBe('served by popularity')
    await w.find('[data-test=like]').trigger('click')
    await flushPromises()
    expect(api.shopFeedback).toHaveBeenCalledWith({ user_id: 'u1', item_id: 'I1', feedback: 'like', request_id: 'r1' })
    w.unmount()
  })
  it('shows the API error instead of a blank page', async () => {
    api.shopRecommendations.mockRejectedValue({ response: { status: 503, data: { field: '', message: 'recommend service unavailable' } } })
    const w = mount(ShopPage, setup('viewer'))
    await flushPromises()
    expect(w.find('[data-test=error]').text()).toContain('recommend service unavailable')
  })
})
