"""The live A/B between production and the registry's canary: which arm a user is in.

The canary slot (``genrec.serving.artifact``: version and weight, set from the model registry)
is read from Redis at most every ``CANARY_REFRESH_S``; a user is in the canary arm when a stable
hash of the canary's version and the user id falls in its weight, so the assignment is the
same on every request and every replica, and each new canary draws a fresh sample. A caller
may name the arm for a request (``VARIANT_HEADER``, for testing): the list then comes from that
arm's model and says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal, get_args

from redis.exceptions import RedisError

from genrec.serving.artifact import Canary, read_canary

log = logging.getLogger("genrec.recommend")
Variant = Literal["production", "canary"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
VARIANT_HEADER = "x-genrec-variant"  # HTTP header and gRPC metadata key
CANARY_REFRESH_S = 2.0  # how soon a change of canary or weight reaches every recommend replica


class Experiment:
    def __init__(self, redis_client: Any) -> None:
        self.redis = redis_client
        self._canary: Canary | None = None
        self._read_at = float("-inf")

    def canary(self) -> Canary | None:
        if time.monotonic() - self._read_at >= CANARY_REFRESH_S:
            self._read_at = time.monotonic()
            try:
                self._canary = read_canary(self.redis)
            except (RedisError, OSError, ValueError) as exc:  # no canary while Redis is away
                log.warning("could not read the canary: %s", exc)
                self._canary = None
        return self._canary

    def variant(self, user_id: str | None, override: Variant | None = None) -> Variant:
        if override is not None:
            return override
        canary = self.canary()
        return "canary" if canary is not None and canary.takes(user_id) else "production"
