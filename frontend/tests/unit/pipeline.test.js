import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import Antd from 'ant-design-vue'
import { lagStatus, sortLagRows } from '../../src/utils/pipeline'
import PipelineLagTable from '../../src/components/PipelineLagTable.vue'

const row = (fn, priority, lag, maxBatch = 500, topic = 'user_events') =>
  ({ function: fn, topic, group: `genrec-${fn}`, priority, lag, max_batch: maxBatch })

describe('pipeline lag', () => {
  it('flags a realtime consumer more than one delivery behind, never a bulk one', () => {
    expect(lagStatus(row('feature-update', 'realtime', 0)).text).toBe('caught up')
    expect(lagStatus(row('feature-update', 'realtime', 400)).color).toBe('green')
    expect(lagStatus(row('feature-update', 'realtime', 501))).toEqual({ color: 'red', text: 'behind' })
    expect(lagStatus(row('analytics-sink', 'bulk', 90000, 5000))).toEqual({ color: 'blue', text: 'catching up' })
    expect(lagStatus(row('analytics-sink', 'bulk', null)).text).toBe('unknown')
  })

  it('lists realtime consumers first', () => {
    const sorted = sortLagRows([row('analytics-sink', 'bulk', 1), row('feature-update', 'realtime', 2),
      row('cold-start-embedding', 'realtime', 0, 500, 'item_events')])
    expect(sorted.map((r) => r.function)).toEqual(['cold-start-embedding', 'feature-update', 'analytics-sink'])
  })

  it('shows the broker outage and every row without a lag', () => {
    const data = { error: 'Kafka is unavailable; try again shortly', measured_at: null,
      subscriptions: [row('feature-update', 'realtime', null), row('analytics-sink', 'bulk', null)] }
    const w = mount(PipelineLagTable, { props: { data }, global: { plugins: [Antd] } })
    expect(w.text()).toContain('Kafka is unavailable')
    expect(w.findAll('[data-test=lag-status]').map((t) => t.text())).toEqual(['unknown', 'unknown'])
  })
})
