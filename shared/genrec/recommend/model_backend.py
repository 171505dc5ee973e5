"""The recommend service's view of the model server (genrec.serving.client)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from redis.exceptions import RedisError

from genrec.config import Settings
from genrec.recommend.service import Candidate
from genrec.serving import client as serving
from genrec.serving.artifact import Canary, read_canary
from genrec.serving.repository import canary_model_name

log = logging.getLogger(__name__)
CANARY_REFRESH_S = 2.0  # how soon a change of canary or weight reaches every recommend replica


class TritonModelBackend:
    """Generative retrieval over Open Inference Protocol v2 (Triton locally or KServe).

    A canary (the registry's, published to the canary slot) answers its weight's share of
    users, picked by a stable hash; when it cannot answer, production does.
    """

    def __init__(self, s: Settings) -> None:
        from genrec.stores.hot_state import redis_client

        self.settings = s
        # On the request path (the code table's refresh, the canary): Redis waits at most the
        # request timeout, so a stalled Redis costs a request half a second, not seconds.
        self.redis = redis_client(s, timeout_s=s.redis.request_timeout_s)
        self.client = serving.ModelClient(s, redis_client=self.redis)
        self.canary_client = serving.ModelClient(s, model_name=canary_model_name(s.model_server.model_name),
                                                 redis_client=self.redis)
        self._canary: Canary | None = None
        self._canary_read_at = float("-inf")

    def canary(self) -> Canary | None:
        if time.monotonic() - self._canary_read_at >= CANARY_REFRESH_S:
            self._canary_read_at = time.monotonic()
            try:
                self._canary = read_canary(self.redis)
            except (RedisError, OSError, ValueError) as exc:  # no canary while Redis is away
                log.warning("could not read the canary: %s", exc)
                self._canary = None
        return self._canary

    def generate(self, history: Sequence[str], user_id: str | None, k: int) -> tuple[str, list[Candidate]]:
        canary = self.canary()
        if canary is not None and canary.takes(user_id):
            try:
                return self._generate(self.canary_client, history, user_id, k)
            except serving.ModelUnavailable as exc:  # a failing canary costs its users nothing
                log.warning("canary %s unavailable, production answers: %s", canary.version, exc)
        return self._generate(self.client, history, user_id, k)

    def generate_many(self, histories: Sequence[Sequence[str]], user_ids: Sequence[str | None],
                      k: int) -> list[tuple[str, list[Candidate]]]:
        """One call per model asked: the canary's users together, the others together."""
        canary = self.canary()
        on_canary = [canary is not None and canary.takes(u) for u in user_ids]
        answers: list[tuple[str, list[Candidate]] | None] = [None] * len(histories)
        groups = ((self.canary_client, [i for i, c in enumerate(on_canary) if c]),
                  (self.client, [i for i, c in enumerate(on_canary) if not c]))
        for client, rows in groups:
            if not rows:
                continue
            try:
                got = self._generate_rows(client, [histories[i] for i in rows], [user_ids[i] for i in rows], k)
            except serving.ModelUnavailable as exc:
                if client is self.client:
                    raise
                log.warning("canary %s unavailable, production answers: %s", canary.version, exc)
                got = self._generate_rows(self.client, [histories[i] for i in rows], [user_ids[i] for i in rows], k)
            for i, answer in zip(rows, got, strict=True):
                answers[i] = answer
        return answers  # type: ignore[return-value]

    @classmethod
    def _generate(cls, client: serving.ModelClient, history: Sequence[str], user_id: str | None,
                  k: int) -> tuple[str, list[Candidate]]:
        return cls._generate_rows(client, [history], [user_id], k)[0]

    @staticmethod
    def _generate_rows(client: serving.ModelClient, histories: Sequence[Sequence[str]],
                       user_ids: Sequence[str | None], k: int) -> list[tuple[str, list[Candidate]]]:
        try:
            version, rows = client.recommend_versioned([list(h) for h in histories], user_ids=list(user_ids), k=k)
        except serving.ModelUnavailable:
            raise
        except (serving.InvalidModelRequest, LookupError, RuntimeError, OSError, RedisError) as exc:
            # a request the model refuses, no artifact promoted yet, or the id map (Redis)
            # unreachable: the fallbacks answer
            raise serving.ModelUnavailable(str(exc)) from exc
        return [(version, [Candidate(item_id, score) for item_id, score in row]) for row in rows]
