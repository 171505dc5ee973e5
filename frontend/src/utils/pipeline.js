/**
 * How the dashboard judges a subscription's consumer lag (GET /api/v1/pipeline/lag).
 * Realtime subscriptions are the freshness path: more than one delivery's worth of records
 * waiting (its max_batch) means clicks are reaching the next list late. Bulk ones may lag
 * without harm; they are shown as catching up, never as failing.
 */
export function lagStatus(row) {
  if (row.lag === null || row.lag === undefined) return { color: 'default', text: 'unknown' }
  if (row.lag === 0) return { color: 'green', text: 'caught up' }
  if (row.priority === 'realtime') {
    return row.lag > row.max_batch ? { color: 'red', text: 'behind' } : { color: 'green', text: 'flowing' }
  }
  return { color: 'blue', text: 'catching up' }
}

/** Realtime first, then by function and topic: the rows that matter for freshness on top. */
export const sortLagRows = (rows) =>
  [...(rows || [])].sort(
    (a, b) =>
      (a.priority === 'realtime' ? 0 : 1) - (b.priority === 'realtime' ? 0 : 1) ||
      a.function.localeCompare(b.function) ||
      a.topic.localeCompare(b.topic),
  )
