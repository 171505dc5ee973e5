"""`genrec bench graph`: the served graph alone, timed in process (here: one CPU thread)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genrec.bench.graph import run_graph_bench
from genrec.serving.runners import converts_at_load


def test_graph_bench_times_each_batch_and_writes_its_report(tmp_path: Path) -> None:
    converts = converts_at_load(torch.device("cpu"))
    results = run_graph_bench(tmp_path, budget="smoke", sizes=[300], batches=[1, 3], device="cpu", log=lambda _: None)
    rows = json.loads((tmp_path / "graph-cpu.json").read_text())["rows"]
    assert [(r["catalog"], r["batch"]) for r in rows] == [(300, 1), (300, 3)]
    for r in rows:
        timing = r["served"]
        assert timing["runner"] == ("onnxruntime" if converts else "traced")  # what the model server runs here
        assert timing["calls"] >= 5 and 0 < timing["p50_ms"] <= timing["p99_ms"]
        assert timing["users_per_s"] == pytest.approx(r["batch"] * 1000 / timing["p50_ms"], rel=1e-3)
        assert "cuda_graph" not in r  # a CUDA-graph replay only where there is a GPU
    assert results["complete"]
    md = (tmp_path / "graph-cpu.md").read_text()
    assert "| 300 | 3 |" in md and (tmp_path / "graph-cpu.png").stat().st_size > 0
