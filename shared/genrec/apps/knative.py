"""Adapter from a genrec ASGI app to the Knative `func` Python runtime (func-python).

func-python calls `new()` for an object with `handle(scope, receive, send)` and optional
`start(cfg)` / `stop()` / `alive()` / `ready()`; it answers /health/* itself.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI


class AsgiFunction:
    def __init__(self, factory: Callable[[], FastAPI]) -> None:
        self._factory = factory
        self.app: FastAPI | None = None

    def start(self, cfg: dict[str, str]) -> None:
        from genrec.logs import configure_logging
        from genrec.tracing import setup_tracing

        self.app = self._factory()
        service = getattr(self.app.state, "service_name", "genrec")
        configure_logging(service)
        setup_tracing(service)
        on_start = getattr(self.app.state, "on_start", None)
        if on_start:
            on_start()

    def stop(self) -> None:
        on_stop = getattr(self.app.state, "on_stop", None) if self.app else None
        if on_stop:
            on_stop()

    def alive(self) -> tuple[bool, str]:
        return (self.app is not None, "OK" if self.app is not None else "starting")

    def ready(self) -> tuple[bool, str]:
        is_ready = getattr(self.app.state, "is_ready", None) if self.app else None
        ok = self.app is not None and (is_ready() if is_ready else True)
        return (ok, "OK" if ok else "not ready")

    async def handle(self, scope, receive, send) -> None:
        if self.app is None:  # the runtime always calls start() first; keep a clear error anyway
            self.start({})
        await self.app(scope, receive, send)
