"""`genrec demo`: the main job end to end on the embedded stack."""

from __future__ import annotations

from rich.console import Console

from genrec.config import get_settings


def demo() -> None:
    """Stack up → synthetic data through event-capture → train → promote → recommend → new item."""
    from genrec.demo import run

    run(get_settings(), Console())
