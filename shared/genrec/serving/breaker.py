"""A small thread-safe circuit breaker.

closed --(``failures`` consecutive failures)--> open --(``reset_s`` later)--> half-open:
one trial call goes through; its success closes the breaker, its failure re-opens it
for another ``reset_s``. While open, callers fail at once instead of waiting on a
timeout, so a slow or stopped model server degrades the recommend path to its fallback
in microseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    def __init__(self, failures: int = 3, reset_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        self.failures_to_open = failures
        self.reset_s = reset_s
        self.clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self.clock() - self._opened_at >= self.reset_s:
                return HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial at a time."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and self.clock() - self._opened_at >= self.reset_s:
                self._state = HALF_OPEN
            if self._state == HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def retry_in(self) -> float:
        with self._lock:
            return max(0.0, self._opened_at + self.reset_s - self.clock()) if self._state != CLOSED else 0.0

    def record_success(self) -> None:
        with self._lock:
            self._state, self._failures, self._trial_running = CLOSED, 0, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failures_to_open:
                self._state, self._opened_at = OPEN, self.clock()
            self._trial_running = False
