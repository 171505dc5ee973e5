export const fmtNumber = (v, digits = 1) =>
  v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(digits)

export const fmtMs = (v) => (v === null || v === undefined ? '–' : `${Number(v).toFixed(1)} ms`)

export const fmtPct = (v, digits = 1) =>
  v === null || v === undefined ? '–' : `${(Number(v) * 100).toFixed(digits)}%`

export const fmtTime = (iso) => {
  if (!iso) return '–'
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString()
}

/** "Beauty|Skin Care|Serums" -> "Beauty › Skin Care › Serums" */
export const fmtCategory = (path) => (path ? path.split('|').filter(Boolean).join(' › ') : '–')

export const fmtCodes = (codes) => (Array.isArray(codes) && codes.length ? `(${codes.join(', ')})` : '–')

/** The ordered ids of a recommendation list: what "the list changed" compares. */
export const listKey = (items) => (items || []).map((i) => i.item_id).join('|')

/** A stable colour for any label (categories, codes), spread around the hue circle. */
export function colorFor(label, palette = PALETTE) {
  const s = String(label ?? '')
  let h = 0
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0
  return palette[h % palette.length]
}

export const PALETTE = [
  '#1677ff', '#52c41a', '#fa8c16', '#eb2f96', '#722ed1', '#13c2c2', '#fadb14', '#f5222d',
  '#2f54eb', '#a0d911', '#fa541c', '#9254de', '#08979c', '#d4b106', '#c41d7f', '#389e0d',
]

export const ROLE_LABEL = { viewer: 'viewer (read-only)', operator: 'operator' }
