"""The `genrec` command line. Each sub-command group lives in its own module."""

from __future__ import annotations

import os
from typing import Any

import typer

from genrec.cli import ab, admin, bench, config_cmd, data, db, demo, deploy, dev, events, pipeline, serve, train
from genrec.cli import export as export_cmd
from genrec.config import SettingsRefused


class _Cli(typer.Typer):
    """A command whose settings production refuses ends with that message and EX_CONFIG, not a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SettingsRefused as exc:
            typer.echo(str(exc), err=True)
            raise SystemExit(os.EX_CONFIG) from None


app = _Cli(help="genrec: event-driven generative recommender platform.", no_args_is_help=True)
app.add_typer(config_cmd.app, name="config")
app.add_typer(dev.app, name="dev")
app.add_typer(data.app, name="data")
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(events.app, name="events")
app.command("demo")(demo.demo)
app.add_typer(bench.app, name="bench")
app.command("train")(train.train)
app.add_typer(serve.app, name="serve")
app.command("export")(export_cmd.export)
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(ab.app, name="ab")
app.add_typer(deploy.app, name="deploy")

if __name__ == "__main__":  # pragma: no cover
    app()
