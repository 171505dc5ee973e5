"""The `genrec` command line. Each sub-command group lives in its own module."""

from __future__ import annotations

import typer

from genrec.cli import admin, bench, config_cmd, data, db, demo, deploy, dev, events, pipeline, serve, train
from genrec.cli import export as export_cmd

app = typer.Typer(help="genrec: event-driven generative recommender platform.", no_args_is_help=True)
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
app.add_typer(deploy.app, name="deploy")

if __name__ == "__main__":  # pragma: no cover
    app()
