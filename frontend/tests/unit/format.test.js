import { describe, expect, it } from 'vitest'
import { colorFor, fmtCategory, fmtCodes, fmtMs, fmtPct, listKey } from '../../src/utils/format'
import { errorMessage } from '../../src/api/http'

describe('formatting', () => {
  it('formats missing values as a dash', () => {
    expect(fmtMs(null)).toBe('–')
    expect(fmtPct(undefined)).toBe('–')
    expect(fmtCodes([])).toBe('–')
  })
  it('formats values', () => {
    expect(fmtMs(12.345)).toBe('12.3 ms')
    expect(fmtPct(0.1234)).toBe('12.3%')
    expect(fmtCategory('Beauty|Skin Care|Serums')).toBe('Beauty › Skin Care › Serums')
    expect(fmtCodes([3, 1, 0])).toBe('(3, 1, 0)')
  })
  it('keys a list by its ordered ids', () => {
    expect(listKey([{ item_id: 'a' }, { item_id: 'b' }])).toBe('a|b')
    expect(listKey(null)).toBe('')
  })
  it('gives stable colours', () => {
    expect(colorFor('Beauty')).toBe(colorFor('Beauty'))
  })
})

describe('errorMessage', () => {
  it('uses the API error body, naming the field', () => {
    const err = { response: { status: 422, data: { error: 'invalid_request', field: 'weight', message: 'too big' } } }
    expect(errorMessage(err)).toBe('weight: too big')
  })
  it('falls back to the status or the message', () => {
    expect(errorMessage({ response: { status: 502, data: '<html>' } })).toBe('HTTP 502')
    expect(errorMessage(new Error('Network Error'))).toBe('Network Error')
  })
})
