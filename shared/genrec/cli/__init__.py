"""The `genrec` command line. Each sub-command group lives in its own module."""

from __future__ import annotations

import typer

from genrec.cli import config_cmd, data, demo, dev, events

app = typer.Typer(help="genrec: event-driven generative recommender platform.", no_args_is_help=True)
app.add_typer(config_cmd.app, name="config")
app.add_typer(dev.app, name="dev")
app.add_typer(data.app, name="data")
app.add_typer(events.app, name="events")
app.command("demo")(demo.demo)

if __name__ == "__main__":  # pragma: no cover
    app()
