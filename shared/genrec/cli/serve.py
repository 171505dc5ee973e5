"""`genrec serve`: run, inspect and feed the model server (Triton, OIP v2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="The model server: start it, check it, promote artifacts, feed new items.",
                  no_args_is_help=True)
console = Console()


@app.command("start")
def start(
    artifact: str = typer.Option("current", "--artifact", help="Dir or s3:// URI; 'current' follows the pointer."),
    port: int | None = typer.Option(None, "--port", help="HTTP port (default: stack.port('model_server'))."),
    no_dynamic_batching: bool = typer.Option(False, "--no-dynamic-batching"),
    runner: str = typer.Option("auto", "--runner", help="auto | eager | torchscript | onnx | tensorrt"),
    instances: int = typer.Option(1, "--instances", help="Model instances (processes)."),
    no_feed: bool = typer.Option(False, "--no-feed", help="Do not follow the Redis code feed."),
) -> None:
    """Run Triton in the foreground from .venv-serving (`genrec dev up` runs it in the background)."""
    from genrec.serving.launch import serving_python

    argv = [str(serving_python()), "-m", "genrec.serving.launch", "--artifact", artifact, "--runner", runner,
            "--instances", str(instances)]
    if port:
        argv += ["--http-port", str(port)]
    if no_dynamic_batching:
        argv.append("--no-dynamic-batching")
    if no_feed:
        argv.append("--no-feed")
    os.execv(argv[0], argv)


@app.command("status")
def status() -> None:
    """Is the server live, is the model ready, which artifact version answers?"""
    from genrec.serving.client import ModelClient

    info = ModelClient().status()
    console.print_json(json.dumps(info))
    if not info.get("ready"):
        raise typer.Exit(1)


@app.command("promote")
def promote(artifact: str = typer.Argument(..., help="Trained artifact dir or s3:// URI.")) -> None:
    """Point the model server at an artifact; replicas load it in the background and swap."""
    from genrec.serving.artifact import set_current
    from genrec.stores.hot_state import redis_client

    try:
        client = redis_client()
        client.ping()
    except Exception as exc:
        console.print(f"[yellow]Redis unreachable ({exc}); writing the pointer file only[/]")
        client = None
    art = set_current(artifact, redis_client=client)
    console.print(f"production artifact: {art.uri} (version {art.version}, {art.n_items} items)")


@app.command("append")
def append(
    item_id: str = typer.Argument(..., help="External id of the new item."),
    codes: str = typer.Option(..., "--codes", help="Comma-separated Semantic ID, e.g. 3,17,250,0."),
) -> None:
    """Feed one item's codes to every replica (normally the cold-start function does this)."""
    import numpy as np

    from genrec.serving.feed import append_items

    index = append_items([item_id], np.asarray([[int(c) for c in codes.split(",")]]))
    console.print(f"{item_id} -> dense index {int(index[0])}")


@app.command("repository")
def repository(
    out: Path | None = typer.Option(None, "--out", help="Where to write the model repository."),
    production: bool = typer.Option(False, "--production",
                                    help="Write the production server's repository (the InferenceService's "
                                         "storageUri): follows the production pointer; kind from settings."),
    artifact: str = typer.Option("current", "--artifact", help="'current', 'bundled', or a dir / s3:// URI."),
    kind: str = typer.Option("cpu", "--kind", help="cpu | gpu instances."),
    instances: int = typer.Option(1, "--instances"),
) -> None:
    """Write a Triton model repository running the eager model (no export needed)."""
    from genrec.serving.repository import write_production_repository, write_repository

    if production == (out is not None):
        console.print("[bold red]error:[/] give exactly one of --out DIR and --production")
        raise typer.Exit(2)
    if production:
        console.print(f"wrote {write_production_repository()}")
        return
    console.print(f"wrote {write_repository(out, artifact=artifact, kind=kind, instances=instances).parent}")
