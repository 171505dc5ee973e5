import { describe, expect, it } from 'vitest'
import { followStream, parseSSE } from '../../src/api/sse'

describe('parseSSE', () => {
  it('splits complete events and keeps the partial tail', () => {
    const { events, rest } = parseSSE('retry: 3000\n\nevent: metrics\ndata: {"a":1}\n\ndata: {"b"')
    expect(events).toEqual([{ event: 'metrics', data: '{"a":1}' }])
    expect(rest).toBe('data: {"b"')
  })
  it('joins multi-line data, ignores comments and handles CRLF', () => {
    const { events } = parseSSE(': ping\r\ndata: line1\r\ndata:line2\r\n\r\n')
    expect(events).toEqual([{ event: 'message', data: 'line1\nline2' }])
  })
})

describe('followStream', () => {
  it('sends the bearer token and delivers parsed events across chunk boundaries', async () => {
    const chunks = ['event: metrics\ndata: {"requests_per_s"', ': 2.5}\n\n', 'data: {"requests_per_s": 3}\n\n']
    let seenAuth = null
    const fetchImpl = async (_url, opts) => {
      seenAuth = opts.headers.Authorization
      let i = 0
      return {
        ok: true,
        body: { getReader: () => ({ read: async () => (i < chunks.length
          ? { value: new TextEncoder().encode(chunks[i++]), done: false } : { done: true }) }) },
      }
    }
    const got = []
    const statuses = []
    const handle = followStream('/s', { token: 't0k', fetchImpl, retryMs: 10_000,
      onEvent: (d) => got.push(d), onStatus: (s) => statuses.push(s) })
    await new Promise((r) => setTimeout(r, 20))
    handle.stop()
    expect(seenAuth).toBe('Bearer t0k')
    expect(got).toEqual([{ requests_per_s: 2.5 }, { requests_per_s: 3 }])
    expect(statuses[0]).toBe('open')
  })
})
