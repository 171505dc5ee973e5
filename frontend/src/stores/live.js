import { defineStore } from 'pinia'
import { followStream } from '../api/sse'

export const MAX_POINTS = 90

// Live metrics from the admin API's SSE stream, kept as a short rolling history for charts.
export const useLive = defineStore('live', {
  state: () => ({ latest: null, history: [], status: 'idle', handle: null }),
  actions: {
    start(token) {
      if (this.handle) return
      this.status = 'connecting'
      this.handle = followStream('/api/v1/metrics/stream?interval=2', {
        token,
        onEvent: (snap) => this.push(snap),
        onStatus: (s) => (this.status = s),
      })
    },
    push(snap) {
      this.latest = snap
      this.history.push(snap)
      if (this.history.length > MAX_POINTS) this.history.splice(0, this.history.length - MAX_POINTS)
    },
    stop() {
      this.handle?.stop()
      this.handle = null
      this.status = 'idle'
    },
  },
})
