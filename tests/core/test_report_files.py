"""Benchmark reports are written under the label the user gave, whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genrec.bench.report import write_report


def test_a_label_with_a_dot_keeps_its_whole_name(tmp_path: Path) -> None:
    write_report({"n": 1}, tmp_path / "load-events-fill-3.6M", lambda r: f"# {r['n']}",
                 lambda _r, path: path.write_bytes(b"png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "load-events-fill-3.6M.json", "load-events-fill-3.6M.md", "load-events-fill-3.6M.png"]
    assert json.loads((tmp_path / "load-events-fill-3.6M.json").read_text()) == {"n": 1}


def test_numpy_values_are_written_as_numbers(tmp_path: Path) -> None:
    write_report({"recall": np.float32(0.5), "n": np.int64(3), "best": np.bool_(True)}, tmp_path / "r",
                 lambda r: "")
    assert json.loads((tmp_path / "r.json").read_text()) == {"recall": 0.5, "n": 3, "best": True}
