"""`genrec db migrate | status`: the PostgreSQL schema."""

from __future__ import annotations

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from genrec.config import get_settings
from genrec.stores.postgres import applied_migrations, migrate, pending_migrations

app = typer.Typer(help="PostgreSQL schema migrations.", no_args_is_help=True)
console = Console()


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1)


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending migrations in order (idempotent; safe to run from several processes)."""
    try:
        applied = migrate(get_settings())
    except psycopg.Error as exc:
        _fail(exc)
    console.print(f"applied {applied}" if applied else "schema is up to date")


@app.command()
def status() -> None:
    """List applied and pending migrations; exit 1 when some are pending."""
    s = get_settings()
    try:
        done, pending = applied_migrations(s), pending_migrations(s)
    except psycopg.Error as exc:
        _fail(exc)
    table = Table(title="schema migrations")
    for col in ("version", "name", "applied at"):
        table.add_column(col)
    for version, name, at in done:
        table.add_row(str(version), name, at.isoformat(timespec="seconds"))
    for version, name in pending:
        table.add_row(str(version), name, "[yellow]pending[/]")
    console.print(table)
    if pending:
        raise typer.Exit(1)
