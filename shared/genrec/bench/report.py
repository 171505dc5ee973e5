"""Where every benchmark's results go: ``STEM.json`` (the data), ``STEM.md`` (the table) and,
when the benchmark draws one, ``STEM.png``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
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


# The vector extensions that change what a CPU result means (/proc/cpuinfo's flags -> how reports name them):
# "AMD EPYC" alone named both 2-core machines these benchmarks ran on, one with AVX-512 and one without.
CPU_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "VNNI", "avx_vnni": "AVX-VNNI",
                "avx512_bf16": "BF16", "amx_tile": "AMX"}


def cpu_features(cpuinfo: str) -> list[str]:
    """The ``CPU_FEATURES`` that the first ``flags`` line of ``cpuinfo`` (/proc/cpuinfo's text) lists."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return [name for flag, name in CPU_FEATURES.items() if flag in flags]


def machine_info() -> dict[str, Any]:
    """The machine a result was measured on: CPU model and its vector extensions, cores, memory, torch, GPU,
    load average."""
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        cpu = f"{cpu} ({', '.join(cpu_features(cpuinfo)) or 'no AVX2'})"
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        mem_gb = None
    return {
        "platform": platform.platform(), "python": sys.version.split()[0], "cpu": cpu, "cores": os.cpu_count(),
        "memory_gb": mem_gb, "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def _json_default(o: Any) -> Any:
    """numpy scalars as their Python values; anything else JSON cannot hold, as its text."""
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
