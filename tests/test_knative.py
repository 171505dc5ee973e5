"""The Knative runtime adapter: only an app whose start succeeded is alive."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from genrec.apps.knative import AsgiFunction


def test_a_function_whose_start_hook_fails_is_not_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genrec.logs.configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr("genrec.tracing.setup_tracing", lambda *_a, **_k: None)

    def factory() -> FastAPI:
        app = FastAPI()

        def broken_start() -> None:
            raise RuntimeError("the broker is misconfigured")

        app.state.on_start = broken_start
        return app

    function = AsgiFunction(factory)
    with pytest.raises(RuntimeError, match="misconfigured"):
        function.start({})
    # func-python's server serves on after a failed start: the probes must tell Knative to restart it.
    assert function.alive() == (False, "starting")
    assert function.ready()[0] is False
