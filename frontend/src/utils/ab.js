/**
 * The live A/B report (GET /api/v1/analytics/ab, genrec.evaluation.abtest) as the Models page shows it.
 */
import { fmtPct } from './format'

export const ARMS = ['production', 'canary']

/** One line saying what the click-through test found. */
export function abVerdict(report) {
  const ctr = report?.ctr
  if (!ctr || !ctr.production.lists || !ctr.canary.lists) return { color: 'default', text: 'No lists served in both arms yet' }
  const [lo, hi] = ctr.difference_interval
  const diff = `${fmtPct(ctr.difference, 2)} [${fmtPct(lo, 2)}, ${fmtPct(hi, 2)}], p = ${ctr.p_value.toFixed(4)}`
  if (ctr.better === 'canary') return { color: 'green', text: `Canary is better: ${diff}` }
  if (ctr.better === 'production') return { color: 'red', text: `Canary is worse: ${diff}` }
  return { color: 'blue', text: `No significant difference yet: ${diff}` }
}

/** Rows of the arms table: rate with its 95 % interval. */
export const abRows = (report) =>
  ARMS.map((arm) => {
    const c = report?.ctr?.[arm]
    const v = report?.conversion?.[arm]
    if (!c) return { arm, lists: 0, users: 0, ctr: '–', conversion: '–', versions: '–' }
    const withCi = (m) => `${fmtPct(m.rate, 2)} [${fmtPct(m.interval[0], 2)}, ${fmtPct(m.interval[1], 2)}]`
    return { arm, lists: c.lists, users: c.users, ctr: withCi(c), conversion: withCi(v), versions: c.versions.join(', ') || '–' }
  })

/** ECharts series: each arm's click-through per hour (null where the arm served nothing). */
export function ctrSeries(timeline) {
  const hours = (timeline || []).map((t) => t.hour)
  return {
    hours,
    series: ARMS.map((arm) => ({ name: arm, type: 'line', connectNulls: true, data: (timeline || []).map((t) => (t[arm] ? t[arm].ctr : null)) })),
  }
}
