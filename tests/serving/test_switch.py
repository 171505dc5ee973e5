"""Promoting another artifact swaps it in while requests keep being answered."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from genrec.serving.artifact import set_current
from genrec.serving.client import ModelClient, ModelUnavailable

from .conftest import wait_ready

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_version_switch_drops_no_request(model_server, bundle_dir_v2) -> None:
    s, r, v1 = model_server["settings"], model_server["redis"], model_server["artifact"]
    client = ModelClient(s, timeout_s=30.0)
    seen: list[str] = []
    failures: list[Exception] = []
    stop = threading.Event()

    def traffic() -> None:
        local = ModelClient(s, timeout_s=30.0)
        while not stop.is_set():
            try:
                seen.append(local.infer(np.array([[1, 2, 3]])).version)
            except ModelUnavailable as exc:
                failures.append(exc)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        v2 = set_current(bundle_dir_v2, s, redis_client=r)
        assert v2.version != v1.version
        wait_ready(client, v2.version, timeout_s=120)
        n = len(seen)
        while len(seen) < n + 3:  # a few answers from the new version
            worker.join(0.1)
    finally:
        stop.set()
        worker.join(60)
        set_current(v1.uri, s, redis_client=r)  # back to v1 for the other tests
        wait_ready(client, v1.version, timeout_s=120)
    assert not failures, failures[:3]
    assert seen[0] == v1.version and seen[-1] == v2.version
    switch = seen.index(v2.version)
    assert set(seen[switch:]) == {v2.version}, "no flapping back once swapped"
