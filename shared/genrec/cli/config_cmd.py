"""`genrec config show`: the effective configuration with secrets masked."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.syntax import Syntax

from genrec.config import get_settings

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print raw JSON.")) -> None:
    """Print the effective config (defaults < genrec.toml < GENREC_* env), secrets masked."""
    text = json.dumps(get_settings().masked(), indent=2, default=str)
    if as_json:
        typer.echo(text)
    else:
        Console().print(Syntax(text, "json", theme="ansi_dark"))
