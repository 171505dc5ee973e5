import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import Antd from 'ant-design-vue'
import AsyncBlock from '../../src/components/AsyncBlock.vue'
import RecCard from '../../src/components/RecCard.vue'
import ServedBy from '../../src/components/ServedBy.vue'

const opts = { global: { plugins: [Antd] } }
const item = {
  item_id: 'I1', score: 0.8123, semantic_ids: [1, 2, 0], title: 'Nexro Serum', description: 'A soft serum.',
  category_path: 'Beauty|Skin Care|Serums', image_url: '', reason: 'Similar to “Cream”', is_new: true,
}

describe('RecCard', () => {
  it('shows title, description, score, reason and the NEW badge', () => {
    const w = mount(RecCard, { ...opts, props: { item } })
    expect(w.text()).toContain('Nexro Serum')
    expect(w.text()).toContain('A soft serum.')
    expect(w.text()).toContain('score 0.812')
    expect(w.find('[data-test=reason]').text()).toBe('Similar to “Cream”')
    expect(w.find('[data-test=new-badge]').exists()).toBe(true)
    expect(w.find('.cover-letter').text()).toBe('Serums') // no image: the leaf category on the cover
  })
  it('has no NEW badge for older items and emits like / skip with the item', async () => {
    const w = mount(RecCard, { ...opts, props: { item: { ...item, is_new: false } } })
    expect(w.find('[data-test=new-badge]').exists()).toBe(false)
    await w.find('[data-test=like]').trigger('click')
    await w.find('[data-test=skip]').trigger('click')
    expect(w.emitted('like')[0][0].item_id).toBe('I1')
    expect(w.emitted('skip')[0][0].item_id).toBe('I1')
  })
  it('disables the buttons while feedback is in flight', () => {
    const w = mount(RecCard, { ...opts, props: { item, busy: true } })
    expect(w.find('[data-test=like]').attributes('disabled')).toBeDefined()
  })
})

describe('AsyncBlock', () => {
  it('shows the error with a retry button that emits retry', async () => {
    const w = mount(AsyncBlock, { ...opts, props: { error: 'weight: too big' }, slots: { default: '<p>data</p>' } })
    expect(w.find('[data-test=error]').text()).toContain('weight: too big')
    expect(w.text()).not.toContain('data')
    await w.find('[data-test=error] button').trigger('click')
    expect(w.emitted('retry')).toHaveLength(1)
  })
  it('shows the empty text, else the content', () => {
    const empty = mount(AsyncBlock, { ...opts, props: { empty: true, emptyText: 'No items.' } })
    expect(empty.find('[data-test=empty]').text()).toContain('No items.')
    const full = mount(AsyncBlock, { ...opts, slots: { default: '<p class="x">data</p>' } })
    expect(full.find('.x').exists()).toBe(true)
  })
})

describe('ServedBy', () => {
  it('names the serving path', () => {
    expect(mount(ServedBy, { ...opts, props: { path: 'vector' } }).text()).toBe('served by vector')
  })
})
