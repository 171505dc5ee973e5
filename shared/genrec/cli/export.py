"""`genrec export`: a trained artifact -> Triton model repository (one graph + parity check)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def export(
    artifact: str = typer.Option(..., "--artifact", help="Trained artifact dir or s3:// URI."),
    fmt: str = typer.Option("torchscript", "--format", help="torchscript | onnx | tensorrt"),
    out: Path = typer.Option(..., "--out", help="Model repository folder to write."),
    top_k: int = typer.Option(50, "--top-k"),
    beam_width: int | None = typer.Option(
        None, "--beam-width",
        help="Default: the model's own (TigerModel.beam_width_for): top-k, or the head's beam_width (20) "
             "when the head adds top-k or more candidates of its own."),
    instances: int = typer.Option(1, "--instances", help="instance_group count."),
    check: bool = typer.Option(True, "--check/--no-check", help="Parity with eager PyTorch."),
    max_items: int = typer.Option(2**24, "--max-items", help="TensorRT: largest catalogue (trained + fed)."),
) -> None:
    """Export encoder + decoder + constrained beam search as ONE graph taking the code table as input."""
    from genrec.serving.export import export_repository

    report = export_repository(artifact, fmt, out, top_k=top_k, beam_width=beam_width, instances=instances,
                               check=check, max_items=max_items, log=lambda m: console.print(f"[cyan]•[/] {m}"))
    if report.cases:
        table = Table(title=f"parity: {fmt} vs eager PyTorch")
        for col in ("batch", "length", "excluded", "table items", "exact item match", "max |Δscore|"):
            table.add_column(col, justify="right")
        for c in report.cases:
            table.add_row(str(c.batch), str(c.length), str(c.excluded), str(c.n_items), f"{c.item_match:.4f}",
                          f"{c.max_abs_diff:.2e}")
        console.print(table)
    if report.note:
        console.print(report.note)
    console.print(f"repository: {out}/genrec (graph {report.graph_file}, {report.seconds}s)")
    (Path(out) / "genrec" / "1" / "export-report.json").write_text(json.dumps(report.as_dict(), indent=2))
    if not report.ok():
        console.print(f"[bold red]parity check failed[/]: item match {report.item_match:.4f}, "
                      f"max |Δscore| {report.max_abs_diff:.2e}")
        raise typer.Exit(1)
