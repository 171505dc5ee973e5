"""`genrec demo`: the main job end to end on the embedded stack."""

from __future__ import annotations

import typer
from rich.console import Console

from genrec.config import get_settings
from genrec.devstack import stack

console = Console()


def demo() -> None:
    """Bring the local stack up and run the end-to-end flow that exists so far."""
    s = get_settings()
    console.rule("[bold]1. embedded local stack")
    rows = stack.up(s, on_progress=lambda m: console.print(f"[cyan]•[/] {m}"))
    for r in rows:
        console.print(f"  {r.name:<9} {'healthy' if r.healthy else 'UNHEALTHY'}  {r.endpoint}  ({r.description})")
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)
    console.print("\nStop the stack with [bold]genrec dev down[/] (or `make down`).")
