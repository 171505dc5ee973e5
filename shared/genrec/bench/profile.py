"""Where the CPU goes under load: every local Python process sampled with py-spy, as a budget
per unit of work (a recommend request, an accepted event).

Each process's CPU time over the run (psutil, children included) is divided by the units served.
py-spy samples only the thread holding the GIL (``--gil``): its idle detection cannot tell a thread
waiting in ``select`` or on a condition from a running one here, and the GIL holder is by definition
running Python. So the samples measure the Python work, split by what the code was doing, and the
rest of the CPU time is native work with the GIL released (torch kernels, socket I/O, C extensions).
A sample is named by the innermost frame that says something:

* a library (``CATEGORIES``: the Redis client, pydantic, torch, the HTTP server ...), or
* genrec's own code, by module, when the sample is in genrec itself;

and, separately, by the innermost *genrec* frame (``call_sites``): which of our calls paid for the
library time under it. Processes that are not Python (the stores, the broker, Triton's C++ core)
get their CPU time only.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

# (category, path fragments of a frame's file); the first category that matches, from the leaf
# upward, takes the sample. Order matters only where one library calls another.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("torch (model compute)", ("torch/",)),
    ("numpy", ("numpy/",)),
    ("Triton Python backend (IPC, tensors)", ("triton_python_backend_utils",)),
    ("Redis client", ("redis/", "hiredis")),
    ("PostgreSQL client", ("psycopg", "pgvector/")),
    ("Milvus client", ("pymilvus/",)),  # before grpc: pymilvus speaks gRPC
    ("gRPC (server, channels)", ("grpc/", "grpc_health/", "grpc_reflection/")),
    ("Kafka client", ("confluent_kafka/",)),
    ("ClickHouse", ("chdb/", "clickhouse_connect/")),
    ("model-server client (tritonclient)", ("tritonclient/", "geventhttpclient/", "gevent/")),
    ("HTTP client (httpx)", ("httpx/", "httpcore/")),
    ("pydantic (validation, serialisation)", ("pydantic/", "pydantic_core/")),
    ("JSON", ("json/", "orjson")),
    ("CloudEvents SDK", ("cloudevents/",)),
    ("metrics, traces, logs", ("prometheus_client/", "opentelemetry/", "logging/", "pythonjsonlogger/")),
    ("HTTP server (uvicorn, starlette, fastapi)", ("uvicorn/", "starlette/", "fastapi/", "func_python/", "h11/",
                                                  "httptools/")),
    ("event loop, threads", ("asyncio/", "anyio/", "concurrent/", "threading.py", "selectors.py", "queue.py")),
]
GENREC = "genrec/"
OTHER = "other (Python runtime, stdlib)"
NATIVE = "native, GIL released (kernels, sockets, C extensions)"


@dataclass
class ProcessProfile:
    cpu_s: float = 0.0
    samples: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    call_sites: Counter[str] = field(default_factory=Counter)


def _frame_file(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``path/file.py``."""
    start = frame.rfind("(")
    return frame[start + 1 : frame.rfind(":")] if start >= 0 else frame


def _genrec_module(path: str) -> str | None:
    at = path.rfind(GENREC)
    if at < 0:
        return None
    return path[at:].removesuffix(".py").replace("/", ".")


def classify(stack: list[str]) -> tuple[str, str]:
    """A sample's (category, call site); ``stack`` is root first, as py-spy writes it."""
    category = call_site = None
    for frame in reversed(stack):
        path = _frame_file(frame)
        module = _genrec_module(path)
        if module is not None:
            call_site = call_site or f"{module}.{frame.split(' (')[0]}"
            category = category or f"genrec: {module}"
        elif category is None:
            category = next((name for name, parts in CATEGORIES if any(p in path for p in parts)), None)
        if category and call_site:
            break
    return category or OTHER, call_site or "(outside genrec)"


def parse_raw(text: str) -> Counter[tuple[str, str]]:
    """py-spy's ``--format raw`` (collapsed stacks ``a;b;c COUNT``) -> samples per (category, call site)."""
    out: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[classify(stack.split(";"))] += int(count)
    return out


def process_tree_cpu(proc: psutil.Process, skip: tuple[str, ...] = ("py-spy",)) -> dict[int, float]:
    """CPU seconds (user + system) so far of ``proc`` and its children, by pid; ``skip``: process
    names left out (the profiler's own recorders)."""
    out = {}
    with contextlib.suppress(psutil.Error):
        for p in (proc, *proc.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                if p.name() not in skip:
                    times = p.cpu_times()
                    out[p.pid] = times.user + times.system
    return out


def _python_pids(proc: psutil.Process) -> list[int]:
    """The process and its children that run Python (Triton's stubs embed it)."""
    pids = []
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            name = " ".join(p.cmdline()[:1]) + p.name()
            if "python" in name:
                pids.append(p.pid)
    return pids


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise FileNotFoundError("py-spy is not installed (it comes with the `bench` extra: make install)")
    return found


class SamplingProfiler:
    """py-spy on every Python process of ``processes`` for ``duration_s``, started at once."""

    def __init__(self, processes: dict[str, psutil.Process], workdir: Path, duration_s: float,
                 rate_hz: int = 50) -> None:
        self.processes, self.workdir, self.duration_s, self.rate_hz = processes, workdir, duration_s, rate_hz
        self._running: list[tuple[str, Path, subprocess.Popen]] = []

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        exe = py_spy()
        for name, proc in self.processes.items():
            for pid in _python_pids(proc):
                out = self.workdir / f"{name}-{pid}.txt"
                cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(self.duration_s))),
                       "--rate", str(self.rate_hz), "--format", "raw", "--output", str(out), "--gil",
                       "--nonblocking"]
                self._running.append((name, out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                                  stderr=subprocess.DEVNULL)))

    def samples(self) -> dict[str, Counter[tuple[str, str]]]:
        """Wait for every recorder; samples per process name (its Python children folded in)."""
        out: dict[str, Counter[tuple[str, str]]] = {}
        for name, path, recorder in self._running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                recorder.wait(timeout=self.duration_s + 30)
            if path.exists():
                out.setdefault(name, Counter()).update(parse_raw(path.read_text()))
        return out


def budget(cpu_s: dict[str, float], samples: dict[str, Counter[tuple[str, str]]], units: int, unit: str,
           rate_hz: int) -> dict[str, Any]:
    """CPU milliseconds per unit of work, per process: the Python part (GIL samples, each
    ``1 / rate_hz`` seconds) by category and by genrec call site, the rest as native work."""
    rows = {}
    for name, seconds in sorted(cpu_s.items(), key=lambda kv: -kv[1]):
        if not units:
            continue
        per_unit = 1000 * seconds / units
        counts = samples.get(name, Counter())
        row: dict[str, Any] = {"cpu_ms": round(per_unit, 3), "samples": sum(counts.values())}
        if counts:
            ms = 1000 / rate_hz / units
            cats: Counter[str] = Counter()
            sites: Counter[str] = Counter()
            for (cat, site), n in counts.items():
                cats[cat] += n * ms
                sites[site] += n * ms
            cats[NATIVE] = max(0.0, per_unit - sum(cats.values()))
            row["categories"] = {c: round(v, 3) for c, v in cats.most_common()}
            row["call_sites"] = {s: round(v, 3) for s, v in sites.most_common(12)}
        rows[name] = row
    return {"unit": unit, "units": units, "rate_hz": rate_hz, "processes": rows}


def markdown(b: dict[str, Any], top: int = 6) -> list[str]:
    """The budget as Markdown lines: one table of processes, then each profiled one's split."""
    unit = b["unit"]
    total = sum(r["cpu_ms"] or 0 for r in b["processes"].values())
    lines = [f"## CPU budget per {unit} ({b['units']:,} {unit}s)", "",
             "CPU time of each process (psutil) per unit; for Python processes split by py-spy's samples of the "
             "thread holding the GIL (what Python was doing), the rest native work with the GIL released.", "",
             f"| process | CPU ms per {unit} | share | where (ms per {unit}) |", "| --- | ---: | ---: | --- |"]
    for name, r in b["processes"].items():
        if not r["cpu_ms"]:
            continue
        where = ", ".join(f"{c} {ms:.2f}" for c, ms in list(r.get("categories", {}).items())[:top]) or "(not Python)"
        lines.append(f"| {name} | {r['cpu_ms']:.2f} | {100 * r['cpu_ms'] / total:.0f} % | {where} |")
    lines.append(f"| **all** | **{total:.2f}** | | |")
    for name, r in b["processes"].items():
        if r.get("call_sites") and r["cpu_ms"] and r["cpu_ms"] >= 0.05 * total:
            lines += ["", f"{name}, Python time by the innermost genrec call (ms per {unit}): "
                      + ", ".join(f"`{s}` {ms:.2f}" for s, ms in list(r["call_sites"].items())[:8])]
    return lines
