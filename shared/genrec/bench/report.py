"""Where every benchmark's results go: ``STEM.json`` (the data), ``STEM.md`` (the table) and,
when the benchmark draws one, ``STEM.png``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(r: dict[str, Any], stem: Path, markdown: Callable[[dict[str, Any]], str],
                 plot: Callable[[dict[str, Any], Path], None] | None = None) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(r, indent=2))
    stem.with_suffix(".md").write_text(markdown(r))
    if plot is not None:
        plot(r, stem.with_suffix(".png"))
    return stem
