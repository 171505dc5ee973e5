"""`genrec bench startup`: how long each workload takes from process start to ready, and its memory.

Scale from zero pays both on every cold start: Knative starts a pod, the process imports what it
imports, opens its clients, and gets traffic once its readiness probe answers. Each workload is
started afresh ``repeats`` times on a free loopback port, against the stores of the running stack
(`genrec dev up`), in one of two ways:

* ``local``: as the dev stack starts it (``genrec.devstack.services.KnativeFunction``: the image's
  runtime, started directly with this interpreter), readiness at the workload's own path;
* ``image``: as the image starts it (``deploy/entrypoint.sh``: ``function NAME`` under func-python,
  ``service MODULE:FACTORY`` under uvicorn), readiness at the workload's own path.

Measured: seconds from ``Popen`` to the first 200 from the readiness URL, and the resident memory
(RSS, the process and its children) at that moment. Each launch gets a chDB folder of its own, so
the analytics sink never opens the running stack's (chDB allows one engine per path).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from genrec.bench.report import machine_info, write_report
from genrec.config import Settings, get_settings
from genrec.devstack.services import SERVICES, KnativeFunction, StackPaths
from genrec.workloads import WORKLOADS, Workload

# The targets for the workloads that serve without the model libraries.
TARGET_READY_S = 2.0
TARGET_RSS_MB = 150.0
LIGHT = ("event-capture", "feature-update", "llm-enrichment", "analytics-sink", "admin-api")
HOW = ("local", "image")
ENTRYPOINT = Path(__file__).resolve().parents[3] / "deploy" / "entrypoint.sh"
POLL_S = 0.02


@dataclass
class Launch:
    workload: str
    how: str
    ready_s: float | None  # None: never ready within the timeout
    rss_mb: float | None
    error: str = ""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def command(w: Workload, how: str, s: Settings, port: int, python: str | None = None
            ) -> tuple[list[str], Path, dict[str, str], str]:
    """argv, cwd, environment and readiness URL of one launch of ``w`` on ``port``."""
    svc = SERVICES[w.name]
    if not isinstance(svc, KnativeFunction):
        raise TypeError(f"{w.name} is not started as a function locally")
    host = s.stack.host
    env = {**os.environ, **svc.env(s), "LISTEN_ADDRESS": f"{host}:{port}"}
    if how == "local":
        argv = svc.argv(s, StackPaths(s.stack.state_dir))
        if python:
            argv = [python, *argv[1:]]
        if w.kind == "service":  # uvicorn takes its port on the command line
            argv[argv.index("--port") + 1] = str(port)
        return argv, svc.cwd(s), env, f"http://{host}:{port}{w.health[0]}"
    if how != "image":
        raise ValueError(f"how must be one of {HOW}, not {how!r}")
    bin_dir = str(Path(python or sys.executable).parent)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PORT=str(port), HOST=host,
               GENREC_FUNCTIONS_DIR=str(svc.cwd(s).parent))
    return ["sh", str(ENTRYPOINT), *w.args], svc.cwd(s).parent.parent, env, f"http://{host}:{port}{w.health[0]}"


def _rss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return round(total / 2**20, 1)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def launch(w: Workload, how: str, s: Settings, *, timeout_s: float = 60.0, python: str | None = None) -> Launch:
    """Start ``w`` once, wait for its readiness URL to answer 200, measure, stop it."""
    port = _free_port(s.stack.host)
    with tempfile.TemporaryDirectory(prefix="genrec-startup-") as tmp:
        argv, cwd, env, ready_url = command(w, how, s, port, python)
        env["GENREC_CLICKHOUSE__CHDB_PATH"] = str(Path(tmp) / "chdb")
        log = Path(tmp) / "out.log"
        with log.open("wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            with httpx.Client(timeout=1.0) as http:
                while time.monotonic() - started < timeout_s:
                    if proc.poll() is not None:
                        return Launch(w.name, how, None, None, f"exited {proc.returncode}: {_tail(log)}")
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(ready_url).status_code == 200:
                            ready = time.monotonic() - started
                            return Launch(w.name, how, round(ready, 3), _rss_mb(psutil.Process(proc.pid)))
                    time.sleep(POLL_S)
            return Launch(w.name, how, None, None, f"not ready after {timeout_s:.0f} s: {_tail(log)}")
        finally:
            _stop(proc)


def _tail(log: Path, chars: int = 400) -> str:
    return log.read_text(errors="replace")[-chars:].strip()


def summarise(launches: Sequence[Launch]) -> list[dict[str, Any]]:
    """One row per (workload, how): median and worst of the launches that became ready."""
    rows = []
    for key in dict.fromkeys((x.workload, x.how) for x in launches):
        runs = [x for x in launches if (x.workload, x.how) == key]
        ok = [x for x in runs if x.ready_s is not None]
        row: dict[str, Any] = {"workload": key[0], "how": key[1], "launches": len(runs), "ready": len(ok),
                               "errors": [x.error for x in runs if x.error]}
        if ok:
            row |= {"ready_s_median": round(statistics.median(x.ready_s for x in ok), 3),
                    "ready_s_min": min(x.ready_s for x in ok), "ready_s_max": max(x.ready_s for x in ok),
                    "rss_mb_median": round(statistics.median(x.rss_mb for x in ok), 1),
                    "rss_mb_max": max(x.rss_mb for x in ok)}
        if key[0] in LIGHT:
            row["meets_target"] = bool(ok) and len(ok) == len(runs) and (
                row["ready_s_median"] <= TARGET_READY_S and row["rss_mb_median"] <= TARGET_RSS_MB)
        rows.append(row)
    return rows


def run_startup(names: Sequence[str] = (), hows: Sequence[str] = ("local",), repeats: int = 3,
                python: str | None = None, log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    s = get_settings()
    by_name = {w.name: w for w in WORKLOADS if not w.grpc}  # readiness here is an HTTP probe
    unknown = sorted(set(names) - by_name.keys())
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; known: {sorted(by_name)}")
    chosen = [by_name[n] for n in names] if names else list(by_name.values())
    if not hows or set(hows) - set(HOW):
        raise ValueError(f"--how takes {', '.join(HOW)}, not {', '.join(hows) or 'nothing'}")
    machine = machine_info()
    launches = []
    for w in chosen:  # one workload at a time: launches never compete with each other
        for how in hows:
            for _ in range(repeats):
                one = launch(w, how, s, python=python.replace("{workload}", w.name) if python else None)
                log(f"{w.name} ({how}): " + (f"ready in {one.ready_s:.2f} s, {one.rss_mb:.0f} MB"
                                             if one.ready_s is not None else one.error))
                launches.append(one)
    return {"machine": machine, "python": python or sys.executable,
            "targets": {"ready_s": TARGET_READY_S, "rss_mb": TARGET_RSS_MB, "workloads": list(LIGHT)},
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "rows": summarise(launches), "launches": [asdict(x) for x in launches]}


def markdown_report(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# Workload start-up: process start to ready, and resident memory", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}; "
        f"load average {m['load_average_at_start']} at start, {r['load_average_at_end']} at the end "
        "(other work on the machine stretches the times, not the memory). "
        f"Interpreter: `{r['python']}`.", "",
        f"Target for {', '.join(r['targets']['workloads'])}: ready within {r['targets']['ready_s']} s "
        f"and at most {r['targets']['rss_mb']:.0f} MB RSS (medians).", "",
        "| workload | started as | ready | to ready, median (min–max) | RSS, median (max) | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["rows"]:
        timing = (f"{row['ready_s_median']:.2f} s ({row['ready_s_min']:.2f}–{row['ready_s_max']:.2f} s)"
                  if "ready_s_median" in row else "—")
        memory = (f"{row['rss_mb_median']:.0f} MB ({row['rss_mb_max']:.0f} MB)" if "rss_mb_median" in row else "—")
        target = {True: "met", False: "missed"}.get(row.get("meets_target"), "")
        lines.append(f"| {row['workload']} | {row['how']} | {row['ready']}/{row['launches']} | {timing} | "
                     f"{memory} | {target} |")
    errors = [f"- {row['workload']} ({row['how']}): {e}" for row in r["rows"] for e in row["errors"]]
    return "\n".join([*lines, *(["", "Errors:", *errors] if errors else []), ""])


def write_results(r: dict[str, Any], out_dir: Path, label: str = "") -> Path:
    return write_report(r, out_dir / f"startup{'-' + label if label else ''}", markdown_report)
