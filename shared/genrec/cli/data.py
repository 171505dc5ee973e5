"""`genrec data`: make, fetch and inspect datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Datasets: synthetic generator, downloads, loaders.", no_args_is_help=True)
console = Console()


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write interactions.csv + items.csv into."),
    items: int = typer.Option(2000, "--items", min=10),
    users: int = typer.Option(1000, "--users", min=1),
    seed: int = typer.Option(0, "--seed"),
    planted_rule: bool = typer.Option(False, "--planted-rule", help="Deterministic next-item rule (tests)."),
) -> None:
    """Write a synthetic catalogue and event stream (deterministic by seed)."""
    from genrec.data import SynthConfig, generate_synthetic, save_dataset

    ds = generate_synthetic(SynthConfig(n_items=items, n_users=users, seed=seed, planted_rule=planted_rule))
    save_dataset(ds, out)
    console.print(f"wrote {ds.n_interactions} interactions, {ds.n_items} items, {ds.n_users} users to {out}")


@app.command("download")
def download_cmd(
    name: str = typer.Argument(..., help="movielens-100k | movielens-1m | amazon-2014"),
    category: str | None = typer.Argument(None, help="Amazon 2014 category, e.g. Beauty"),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Download a public dataset into the CSV layout (needs internet)."""
    from genrec.data.download import DownloadError, download

    try:
        path = download(name, out, category=category)
    except (DownloadError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"downloaded {name} to {path}")


@app.command("info")
def info(
    path: str = typer.Argument(..., help="Dataset folder (or s3:// URI)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Summarise a dataset folder."""
    from genrec.data import load_dataset

    summary = load_dataset(path).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title=f"dataset {summary['name']}")
    table.add_column("field")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, f"{value:.6f}" if isinstance(value, float) else str(value))
    console.print(table)
