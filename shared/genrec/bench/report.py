"""Where every benchmark's results go: ``STEM.json`` (the data), ``STEM.md`` (the table) and,
when the benchmark draws one, ``STEM.png``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def write_report(r: dict[str, Any], stem: Path, markdown: Callable[[dict[str, Any]], str],
                 plot: Callable[[dict[str, Any], Path], None] | None = None) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    # Appended, not with_suffix: a label may hold a dot ("fill-3.6M"), which with_suffix would cut.
    stem.with_name(f"{stem.name}.json").write_text(json.dumps(r, indent=2, default=_json_default))
    stem.with_name(f"{stem.name}.md").write_text(markdown(r))
    if plot is not None:
        plot(r, stem.with_name(f"{stem.name}.png"))
    return stem


def finish_figure(fig: Any, axes: Any, title: str, path: Path) -> None:
    """A grid and a legend on each panel, the title, then the PNG at ``path`` (the figure closed)."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _json_default(o: Any) -> Any:
    """numpy scalars as their Python values; anything else JSON cannot hold, as its text."""
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
