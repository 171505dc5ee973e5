"""When a record is retried and when it is given up: one delivery policy, rendered into every
production KafkaSource (infra/pulumi, ``delivery``) and followed by the local eventing bridge,
so what the local tests prove about retries and dead letters is what production does.

Knative's Kafka dispatcher (eventing-kafka-broker, ``WebClientCloudEventSender``) sends a record,
and after a failure waits before retry ``n`` (counted from 1, up to ``retry``):

* ``linear``: ``backoffDelay * n``, ``exponential``: ``backoffDelay * 2**n``, with no cap;
* it retries connection errors, timeouts (``timeout`` per request), 5xx, 404, 408, 409 and 429;
  any other non-2xx goes to the dead-letter sink at once, and so does a record whose retries
  all failed.

So a record is dead-lettered by an outage only once the outage outlasts the sum of the waits
(``DeliveryPolicy.window_s``; every attempt's own duration, up to ``timeout``, only adds to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BackoffPolicy = Literal["linear", "exponential"]

# Statuses below 500 that Knative retries (the CloudEvents delivery spec's list); every 5xx is
# retried too. Anything else says "this record will never succeed".
RETRYABLE_CLIENT_ERRORS = frozenset({404, 408, 409, 429})

# A dependency outage this long (PostgreSQL or Redis restarting, a broker failover, a function
# rolled back) only delays events: none is dead-lettered.
OUTAGE_TARGET_S = 15 * 60


def is_retryable(status: int | None) -> bool:
    """Knative's rule for one failed attempt; ``None`` is no answer (refused, reset, timed out)."""
    return status is None or status >= 500 or status in RETRYABLE_CLIENT_ERRORS


@dataclass(frozen=True)
class DeliveryPolicy:
    retry: int  # re-deliveries after the first attempt (Knative ``retry``)
    backoff_policy: BackoffPolicy
    backoff_delay_s: float  # Knative ``backoffDelay``
    timeout_s: float  # one attempt (Knative ``timeout``)

    def __post_init__(self) -> None:
        if self.retry < 0 or self.backoff_delay_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"invalid delivery policy {self}")

    @property
    def attempts(self) -> int:
        return 1 + self.retry

    def delay_s(self, n: int) -> float:
        """The wait before retry ``n`` (1-based), as Knative's Kafka dispatcher computes it."""
        if self.backoff_policy == "linear":
            return self.backoff_delay_s * n
        return self.backoff_delay_s * 2**n

    @property
    def window_s(self) -> float:
        """At least this long passes between a record's first attempt and its dead-lettering
        (linear: ``d * R(R+1)/2``, exponential: ``d * (2**(R+1) - 2)``)."""
        return sum(self.delay_s(n) for n in range(1, self.retry + 1))

    @property
    def max_hold_s(self) -> float:
        """At most this long one record holds its partition: every wait, every attempt timing out."""
        return self.window_s + self.attempts * self.timeout_s


# Linear, not exponential: both can span the target, but an uncapped doubling that does
# (0.5 s * 2**n, 10 retries) ends with 4- and 8-minute waits, so a record waits up to as long
# again as the outage did once its dependency is back. Linear 1 s steps span 17 minutes with
# 45 retries (46 attempts) and never wait more than 45 s: after an outage the backlog moves
# within a minute. (Were retries counted from 0, the span would still be 16.5 minutes.)
# The timeout covers llm-enrichment's slowest answer: three LLM tries of 20 s and their backoff.
# The cost of the long window: a record a function answers 5xx for, for good, holds its
# partition the whole window before it is dead-lettered. Functions answer 4xx for a record
# that can never succeed (dead-lettered at once) and 5xx only for what may pass on a retry.
DELIVERY = DeliveryPolicy(retry=45, backoff_policy="linear", backoff_delay_s=1.0, timeout_s=90.0)
