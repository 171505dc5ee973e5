"""Whether the model server answers as the model it serves: its top-K for fixed users against the
eager reference graph, run here on the same artifact and code table (trained and fed items).

A speed-up of the serving graph (incremental decoding, tracing, batching) must not change what is
recommended; the load benchmark reports this check beside its speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genrec.config import Settings


def served_parity(s: Settings, uri: str, users: int = 32, history: int = 20, seed: int = 0) -> dict[str, Any]:
    """Item match and largest score difference over ``users`` requests of one user each."""
    from genrec.serving.client import ModelClient
    from genrec.serving.engine import ServingEngine
    from genrec.serving.protocol import Request
    from genrec.stores.hot_state import redis_client

    reference = ServingEngine(artifact=uri, runner_kind="eager", settings=s, redis_client=redis_client(s),
                              top_k=s.model.top_k)
    state = reference.load(uri)
    client = ModelClient(s, timeout_s=30)
    rng = np.random.default_rng(seed)
    buckets = max(state.art.user_buckets, 1)
    match, worst, compared, version = [], 0.0, 0, None
    for _ in range(users):
        seq = rng.integers(0, state.art.n_items, (1, history))
        token = rng.integers(0, buckets, (1, 1))
        served = client.infer(seq, token)
        if served.version != state.art.version:
            continue  # another version answered (a promotion meanwhile): not comparable
        want = reference.infer(Request(seq, token))
        got_items, got_scores = served.items[0], served.scores[0]
        match.append(float((want.recommendations[0] == got_items).mean()))
        finite = np.isfinite(want.scores[0]) & np.isfinite(got_scores)
        if finite.any():
            worst = max(worst, float(np.abs(want.scores[0][finite] - got_scores[finite]).max()))
        compared, version = compared + 1, served.version
    return {"users": compared, "version": version, "item_match": min(match) if match else None,
            "mean_item_match": float(np.mean(match)) if match else None, "max_score_diff": worst}
