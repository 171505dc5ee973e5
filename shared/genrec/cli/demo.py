"""`genrec demo`: the main job end to end on the embedded stack."""

from __future__ import annotations

import typer
from rich.console import Console

from genrec.config import get_settings


def demo() -> None:
    """Stack up → synthetic data through event-capture → train → promote → recommend → new item."""
    from genrec.demo import run
    from genrec.devstack.process import StackError

    console = Console()
    try:
        run(get_settings(), console)
    except StackError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
