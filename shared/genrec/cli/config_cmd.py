"""`genrec config show` / `check`: the effective configuration with secrets masked, and whether it may run."""

from __future__ import annotations

import json

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.syntax import Syntax

from genrec.config import UncheckedSettings, env_var, production_problems

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


def _load() -> UncheckedSettings:
    """The effective settings, refused or not; a value that does not validate ends the command naming it."""
    try:
        return UncheckedSettings()
    except ValidationError as exc:
        for error in exc.errors():
            typer.echo(f"{env_var(*(str(p) for p in error['loc']))}: {error['msg']}", err=True)
        raise typer.Exit(1) from None


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print raw JSON.")) -> None:
    """Print the effective config (defaults < genrec.toml < GENREC_* env), secrets masked."""
    text = json.dumps(_load().masked(), indent=2, default=str)
    if as_json:
        typer.echo(text)
    else:
        Console().print(Syntax(text, "json", theme="ansi_dark"))


@app.command("check")
def check() -> None:
    """Would a process start with this config? Non-zero, naming each setting, when production refuses it."""
    s = _load()
    problems = production_problems(s)
    if s.environment == "production" and problems:
        typer.echo(f"refused: {env_var('environment')}=production does not start with these settings:")
        for p in problems:
            typer.echo(f"  {p}")
        raise typer.Exit(1)
    typer.echo(f"ok: {env_var('environment')}={s.environment}")
    if problems:  # development: allowed, but say what production would refuse
        typer.echo("production would refuse:")
        for p in problems:
            typer.echo(f"  {p}")
