import { describe, expect, it } from 'vitest'
import { abRows, abVerdict, ctrSeries } from '../../src/utils/ab'

const arm = (lists, rate, lo, hi, versions = ['v1']) => ({ lists, users: lists, rate, interval: [lo, hi], versions, clicked: Math.round(lists * rate), converted: 0 })
const report = (better, diff = 0.04) => ({
  canary_share: 0.1,
  ctr: { production: arm(9000, 0.08, 0.075, 0.086), canary: arm(1000, 0.12, 0.10, 0.14, ['v2']), better, difference: diff, difference_interval: [diff - 0.02, diff + 0.02], p_value: 0.0002 },
  conversion: { production: arm(9000, 0.02, 0.017, 0.023), canary: arm(1000, 0.03, 0.021, 0.043, ['v2']) },
  timeline: [{ hour: '2026-12-03T10:00:00', production: { lists: 10, ctr: 0.1 } }, { hour: '2026-12-03T11:00:00', production: { lists: 5, ctr: 0.2 }, canary: { lists: 1, ctr: 0 } }],
})

describe('live A/B report', () => {
  it('says which arm is better, with the difference and its interval', () => {
    expect(abVerdict(report('canary')).color).toBe('green')
    expect(abVerdict(report('canary')).text).toContain('Canary is better: 4.00%')
    expect(abVerdict(report('production', -0.04)).color).toBe('red')
    expect(abVerdict(report(null, 0.001)).text).toContain('No significant difference')
    expect(abVerdict(null).text).toContain('No lists')
  })
  it('lists both arms with their intervals and draws click-through per hour', () => {
    const rows = abRows(report('canary'))
    expect(rows.map((r) => r.arm)).toEqual(['production', 'canary'])
    expect(rows[1].ctr).toBe('12.00% [10.00%, 14.00%]')
    expect(rows[1].versions).toBe('v2')
    const { hours, series } = ctrSeries(report('canary').timeline)
    expect(hours).toHaveLength(2)
    expect(series.find((s) => s.name === 'canary').data).toEqual([null, 0])
  })
})
