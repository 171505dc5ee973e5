"""Placeholder until the data commands land."""
import typer

app = typer.Typer(help="Datasets: synthetic generator, downloads, loaders.")
