"""The recommend service's view of the model server (genrec.serving.client)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from genrec.config import Settings
from genrec.recommend.service import Candidate
from genrec.serving import client as serving
from genrec.serving.repository import canary_model_name

log = logging.getLogger(__name__)


class TritonModelBackend:
    """Generative retrieval over Open Inference Protocol v2 (Triton locally or KServe).

    The canary arm of the live A/B (``genrec.recommend.experiment``) is answered by the model
    following the canary slot; when it cannot answer, production does.
    """

    def __init__(self, s: Settings) -> None:
        from genrec.stores.hot_state import redis_client

        self.settings = s
        # On the request path (the code table's refresh): Redis waits at most the request timeout,
        # so a stalled Redis costs a request half a second, not seconds.
        self.redis = redis_client(s, timeout_s=s.redis.request_timeout_s)
        self.client = serving.ModelClient(s, redis_client=self.redis)
        self.canary_client = serving.ModelClient(s, model_name=canary_model_name(s.model_server.model_name),
                                                 redis_client=self.redis)

    def generate(self, history: Sequence[str], user_id: str | None, k: int, *,
                 canary: bool = False) -> tuple[str, list[Candidate]]:
        return self.generate_many([history], [user_id], k, canary=[canary])[0]

    def generate_many(self, histories: Sequence[Sequence[str]], user_ids: Sequence[str | None], k: int, *,
                      canary: Sequence[bool] | None = None) -> list[tuple[str, list[Candidate]]]:
        """One call per model asked: the canary arm's users together, the others together."""
        on_canary = list(canary) if canary is not None else [False] * len(histories)
        answers: list[tuple[str, list[Candidate]] | None] = [None] * len(histories)
        groups = ((self.canary_client, [i for i, c in enumerate(on_canary) if c]),
                  (self.client, [i for i, c in enumerate(on_canary) if not c]))
        for client, rows in groups:
            if not rows:
                continue
            asked = [histories[i] for i in rows], [user_ids[i] for i in rows]
            try:
                got = self._generate_rows(client, *asked, k)
            except serving.ModelUnavailable as exc:
                if client is self.client:
                    raise
                log.warning("the canary model is unavailable, production answers: %s", exc)
                got = self._generate_rows(self.client, *asked, k)
            for i, answer in zip(rows, got, strict=True):
                answers[i] = answer
        return answers  # type: ignore[return-value]

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
