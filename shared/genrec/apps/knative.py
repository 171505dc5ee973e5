"""Adapter from a genrec ASGI app to the Knative `func` Python runtime (func-python).

func-python calls `new()` for an object with `handle(scope, receive, send)` and optional
`start(cfg)` / `stop()` / `alive()` / `ready()`; it answers /health/* itself: readiness is the
app's (``genrec.apps.readiness``: its stores answer), liveness only that the app was built.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from genrec.apps.common import start_app, stop_app
from genrec.config import get_settings


class AsgiFunction:
    def __init__(self, factory: Callable[[], FastAPI]) -> None:
        # The settings now, before the server binds: hypercorn would serve on without an app whose
        # start() raised, so a production process refused its settings (SettingsRefused) must fail here.
        get_settings()
        self._factory = factory
        self.app: FastAPI | None = None

    def start(self, cfg: dict[str, str]) -> None:
        from genrec.logs import configure_logging
        from genrec.tracing import setup_tracing

        app = self._factory()
        service = getattr(app.state, "service_name", "genrec")
        configure_logging(service)
        setup_tracing(service)
        start_app(app)
        # Only a started app is alive: hypercorn serves on after a start() that raised, and an app
        # whose start hook failed must fail its probes (Knative restarts it), not answer ready.
        self.app = app

    def stop(self) -> None:
        if self.app is not None:
            stop_app(self.app)

    def alive(self) -> tuple[bool, str]:
        return (self.app is not None, "OK" if self.app is not None else "starting")

    def ready(self) -> tuple[bool, str]:
        """func-python calls this on its event loop: the check is cached and bounded by its timeout
        (``Readiness``), so a probe never holds requests up for long."""
        if self.app is None:
            return (False, "starting")
        readiness = getattr(self.app.state, "readiness", None)
        down = [name for name, up in (readiness.dependencies() if readiness else {}).items() if not up]
        return (not down, "OK" if not down else "not ready: " + ", ".join(down) + " not answering")

    async def handle(self, scope, receive, send) -> None:
        if self.app is None:  # the runtime always calls start() first; keep a clear error anyway
            self.start({})
        await self.app(scope, receive, send)
