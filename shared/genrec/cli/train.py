"""`genrec train`: train the generative retriever and save its artifact directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def train(
    dataset: str = typer.Option(..., "--dataset", help="Dataset folder or s3:// URI."),
    config: Path | None = typer.Option(None, "--config", help="TOML or YAML training config."),
    out: Path | None = typer.Option(None, "--out", help="Artifact dir (default: <artifacts_dir>/<dataset>)."),
    checkpoint_dir: str | None = typer.Option(None, "--checkpoint-dir", help="Resumable checkpoints (path or s3://)."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda"),
    epochs: int | None = typer.Option(None, "--epochs", help="Override optim.epochs."),
    init_from: list[str] | None = typer.Option(
        None, "--init-from",
        help="Warm start: an earlier run's checkpoint folder, or several of its .pt files to average.",
    ),
) -> None:
    """Train tokenizer + generative model on a dataset; report validation and test metrics."""
    from genrec.config import get_settings
    from genrec.data import load_dataset
    from genrec.training import load_config, train_generative

    cfg = load_config(config, checkpoint_dir=checkpoint_dir, device=device, init_from=init_from or None)
    if epochs is not None:
        cfg.optim = cfg.optim.with_epochs(epochs)
    ds = load_dataset(dataset)
    artifacts = Path(get_settings().model.artifacts_dir)
    target = out or artifacts / ds.name
    if cfg.embeddings.cache_dir is None:  # text embeddings are the slow part on CPU: reuse them
        cfg.embeddings.cache_dir = str(artifacts / "cache" / "embeddings")
    if cfg.metrics_path is None:
        cfg.metrics_path = str(Path(target) / "metrics.jsonl")
    bundle = train_generative(ds, cfg, out_dir=target)
    console.print_json(json.dumps({"validation": bundle.report["validation"], "test": bundle.report.get("test")}))
    console.print(f"saved bundle to {target}")
