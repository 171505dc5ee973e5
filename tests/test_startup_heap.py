"""A started server's heap is out of the collector's reach (``genrec.heap``): full collections
then walk only what requests left behind, not every module and client, so they stop pausing
the event loop for tens of milliseconds under load."""

from __future__ import annotations

import gc

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from genrec.apps.common import create_base_app
from genrec.apps.knative import AsgiFunction


@pytest.fixture
def unfrozen() -> None:
    gc.unfreeze()  # what a fixture's app froze before the test (conftest unfreezes after it)


def _app(started: list[bool]) -> FastAPI:
    app = create_base_app("heap-test", title="heap test")
    app.state.on_start = lambda: started.append(gc.get_freeze_count() == 0)
    return app


def test_an_app_started_by_uvicorn_freezes_its_heap_after_its_start_hook(unfrozen: None) -> None:
    started: list[bool] = []
    with TestClient(_app(started)):  # runs the lifespan, as uvicorn does
        assert started == [True]  # the hook ran first, on a heap not yet frozen
        assert gc.get_freeze_count() > 0


def test_a_knative_function_freezes_its_heap_once_started(unfrozen: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genrec.logs.configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr("genrec.tracing.setup_tracing", lambda *_a, **_k: None)
    started: list[bool] = []
    AsgiFunction(lambda: _app(started)).start({})
    assert started == [True]
    assert gc.get_freeze_count() > 0
