"""The recommend service's view of the model server (genrec.serving.client)."""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import RedisError

from genrec.config import Settings
from genrec.recommend.service import Candidate, ModelUnavailable
from genrec.serving import client as serving


class TritonModelBackend:
    """Generative retrieval over Open Inference Protocol v2 (Triton locally or KServe)."""

    def __init__(self, s: Settings) -> None:
        self.client = serving.ModelClient(s)

    def generate(self, history: Sequence[str], user_id: str | None, k: int) -> tuple[str, list[Candidate]]:
        try:
            version, rows = self.client.recommend_versioned([list(history)], user_ids=[user_id], k=k)
        except (serving.ModelUnavailable, serving.InvalidModelRequest) as exc:
            raise ModelUnavailable(str(exc)) from exc
        except (LookupError, RuntimeError, OSError, RedisError) as exc:
            # no artifact promoted yet, or the id map (Redis) is unreachable: use the fallbacks
            raise ModelUnavailable(str(exc)) from exc
        return version, [Candidate(item_id, score) for item_id, score in rows[0]]
