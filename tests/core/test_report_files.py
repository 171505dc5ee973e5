"""Benchmark reports are written under the label the user gave, whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genrec.bench.report import cpu_features, write_report


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


def test_a_report_names_the_cpus_vector_extensions() -> None:
    """Two 2-core machines both called themselves "AMD EPYC", one with AVX-512 and one without, and their
    results differ by ~1.4x: a report names the extensions its CPU has."""
    intel = "model name\t: Xeon\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_tile\n"
    epyc = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n"
    assert cpu_features(intel) == ["AVX2", "AVX-512", "VNNI", "AMX"]
    assert cpu_features(epyc) == ["AVX2"]
    assert cpu_features("") == []
