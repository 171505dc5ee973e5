"""The server core without Triton: readiness, validation, batching, feed, swaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genrec.config import Settings
from genrec.serving.engine import ServingEngine
from genrec.serving.keys import feed as feed_key
from genrec.serving.protocol import InvalidRequest, NotReady, Request


class ListRedis:
    """Just the list/get calls the engine makes (the real Redis is covered by the server tests)."""

    def __init__(self) -> None:
        self.lists: dict[str, list[str]] = {}

    def llen(self, key: str) -> int:
        return len(self.lists.get(key, []))

    def lrange(self, key: str, start: int, stop: int) -> list[str]:
        items = self.lists.get(key, [])
        return items[start : (None if stop == -1 else stop + 1)]

    def get(self, key: str) -> None:
        return None

    def hset(self, *args: object) -> None:
        pass


def _settings(tmp_path: Path) -> Settings:
    return Settings(model={"artifacts_dir": tmp_path / "artifacts", "device": "cpu"})


def test_not_ready_without_an_artifact_says_what_to_do(tmp_path: Path) -> None:
    engine = ServingEngine(settings=_settings(tmp_path))
    engine.start()
    try:
        with pytest.raises(NotReady, match="genrec serve promote"):
            engine.infer(Request(np.array([[1, 2]])))
        assert engine.status()["ready"] is False
    finally:
        engine.stop()


def test_pointer_file_is_followed(tmp_path: Path, bundle_dir: Path) -> None:
    s = _settings(tmp_path)
    s.model.artifacts_dir.mkdir(parents=True)
    (s.model.artifacts_dir / "CURRENT").write_text(str(bundle_dir))
    engine = ServingEngine(settings=s)
    engine._check_pointer()
    assert engine.ready() and engine.state.art.uri == str(bundle_dir)


def test_batched_requests_equal_single_requests(tmp_path: Path, bundle_dir: Path) -> None:
    engine = ServingEngine(artifact=str(bundle_dir), settings=_settings(tmp_path))
    engine._check_pointer()
    rng = np.random.default_rng(0)
    reqs = [Request(rng.integers(0, 150, size=(1 + i % 2, 2 + i)), np.full((1 + i % 2, 1), i % 3),
                    rng.integers(0, 150, size=(1 + i % 2, 1 + i % 3))) for i in range(5)]
    bad = Request(np.array([[1.5, 2.0]]))
    together = engine.infer_many([*reqs, bad])
    assert isinstance(together[-1], InvalidRequest) and "INT64" in str(together[-1])
    for req, res in zip(reqs, together, strict=False):
        alone = engine.infer(req)
        np.testing.assert_array_equal(alone.recommendations, res.recommendations)
        np.testing.assert_allclose(alone.scores, res.scores, rtol=1e-5)


def test_unknown_indices_are_ignored_not_fatal(tmp_path: Path, bundle_dir: Path) -> None:
    """A replica may lag the code feed by one poll: an index it does not know yet is padding."""
    engine = ServingEngine(artifact=str(bundle_dir), settings=_settings(tmp_path))
    engine._check_pointer()
    a = engine.infer(Request(np.array([[3, 10_000, 4]])))
    b = engine.infer(Request(np.array([[-1, 3, 4]])))
    np.testing.assert_array_equal(a.recommendations, b.recommendations)


def test_feed_entries_extend_the_table_in_place_of_a_restart(tmp_path: Path, bundle_dir: Path) -> None:
    redis = ListRedis()
    engine = ServingEngine(artifact=str(bundle_dir), settings=_settings(tmp_path), redis_client=redis)
    engine._check_pointer()
    old = engine.state
    base = engine.state.art.item_codes
    taken = {tuple(c) for c in base.tolist()}
    free = next(c for c in np.ndindex(*engine.state.art.level_sizes) if c not in taken)
    redis.lists[feed_key(old.art.version)] = [json.dumps({"item_id": "new", "codes": list(map(int, free))})]
    assert engine.poll_feed() == 1
    assert engine.state.n_items == 151 and engine.state is not old and old.n_items == 150
    everything = np.arange(150)[None]
    res = engine.infer(Request(np.array([[0]]), exclude=everything))
    assert res.recommendations[0, 0] == 150 and (res.recommendations[0, 1:] == -1).all()
