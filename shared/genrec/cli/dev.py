"""`genrec dev up | down | status | logs`: run the embedded local stack on loopback."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from genrec.config import get_settings
from genrec.devstack import stack
from genrec.devstack.process import StackError

app = typer.Typer(help="Run the embedded local stack (real servers from PyPI on 127.0.0.1).",
                  no_args_is_help=True)
console = Console()

ServicesArg = typer.Argument(None, help="Services to act on (default: all).")


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1)


@app.command()
def up(services: list[str] | None = ServicesArg) -> None:
    """Start the stack (idempotent) and wait until every server answers a real request."""
    s = get_settings()
    try:
        rows = stack.up(s, services, on_progress=lambda m: console.print(f"[cyan]•[/] {m}"))
    except (StackError, FileNotFoundError) as exc:
        _fail(exc)
    _print(rows)
    console.print(f"state directory: {stack.paths_for(s).root}")


@app.command()
def down(services: list[str] | None = ServicesArg) -> None:
    """Stop the stack's servers (by recorded pid only)."""
    stopped = stack.down(get_settings(), services, on_progress=lambda m: console.print(f"[cyan]•[/] {m}"))
    if not stopped:
        console.print("nothing was running")


@app.command()
def status(services: list[str] | None = ServicesArg) -> None:
    """Show each server: pid, endpoint, and whether it answers a real client operation."""
    try:
        rows = stack.status(get_settings(), services)
    except StackError as exc:
        _fail(exc)
    _print(rows)
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


@app.command()
def logs(service: str, lines: int = typer.Option(50, "-n", help="How many lines.")) -> None:
    """Print the tail of one server's log."""
    try:
        typer.echo(stack.logs(get_settings(), service, lines))
    except StackError as exc:
        _fail(exc)


def _print(rows: list[stack.ServiceStatus]) -> None:
    table = Table(title="genrec local stack")
    for col in ("service", "health", "pid", "endpoint", "local part", "stands for"):
        table.add_column(col)
    for r in rows:
        health = "[green]healthy[/]" if r.healthy else ("[red]unhealthy[/]" if r.pid else "[dim]stopped[/]")
        table.add_row(r.name, health, str(r.pid or "-"), r.endpoint, r.description, r.production)
    console.print(table)
