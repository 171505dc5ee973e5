// Server-sent events over fetch (not EventSource): fetch can send the Authorization header.

/** Split buffered text into complete SSE events; returns {events: [{event, data}], rest}. */
export function parseSSE(buffer) {
  const events = []
  const blocks = buffer.replace(/\r\n/g, '\n').split('\n\n')
  const rest = blocks.pop() ?? ''
  for (const block of blocks) {
    let event = 'message'
    const data = []
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue
      const i = line.indexOf(':')
      const field = i < 0 ? line : line.slice(0, i)
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '')
      if (field === 'event') event = value
      else if (field === 'data') data.push(value)
    }
    if (data.length) events.push({ event, data: data.join('\n') })
  }
  return { events, rest }
}

/**
 * Follow an SSE endpoint, reconnecting after errors until stop() is called.
 * onEvent gets parsed JSON of each event; onStatus gets 'open' | 'error' | 'closed'.
 */
export function followStream(url, { token, onEvent, onStatus = () => {}, retryMs = 3000, fetchImpl = fetch }) {
  let stopped = false
  let controller = null

  async function once() {
    controller = new AbortController()
    const resp = await fetchImpl(url, {
      headers: { Accept: 'text/event-stream', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      signal: controller.signal,
    })
    if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`)
    onStatus('open')
    const reader = resp.body.getReader()
    const decoder = new TextDecoder()
    let buffer = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      const parsed = parseSSE(buffer)
      buffer = parsed.rest
      for (const ev of parsed.events) {
        try {
          onEvent(JSON.parse(ev.data), ev.event)
        } catch {
          /* a malformed event is skipped, the stream goes on */
        }
      }
    }
  }

  ;(async () => {
    while (!stopped) {
      try {
        await once()
        if (!stopped) onStatus('closed')
      } catch (e) {
        if (stopped) break
        onStatus('error', e)
      }
      if (!stopped) await new Promise((r) => setTimeout(r, retryMs))
    }
  })()

  return {
    stop() {
      stopped = true
      controller?.abort()
    },
  }
}
