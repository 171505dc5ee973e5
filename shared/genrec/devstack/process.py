"""Start, track and stop local server processes by recorded pid.

Each process gets a pid file (JSON with pid and start time, so a recycled pid is never
mistaken for ours) and a log file under the stack's state directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A local server could not be started, reached or stopped; the message says which and why."""


def since_boot(proc: psutil.Process) -> float:
    """When ``proc`` started, in seconds after the machine booted. psutil's create_time is boot time
    plus that, and the boot time it reads is the wall clock minus uptime: a step of the wall clock
    (NTP, a VM paused or migrated) moves both, never their difference."""
    return proc.create_time() - psutil.boot_time()


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    create_time: float
    started_after_boot: float | None = None  # None: a pid file from before it was recorded

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None if it has exited (or the pid was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if self.started_after_boot is not None:
                moved = abs(since_boot(proc) - self.started_after_boot)
            else:
                moved = abs(proc.create_time() - self.create_time)
            if moved > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def read_record(pid_file: Path) -> ProcessRecord | None:
    try:
        data = json.loads(pid_file.read_text())
        after_boot = data.get("started_after_boot")
        return ProcessRecord(pid=int(data["pid"]), create_time=float(data["create_time"]),
                             started_after_boot=None if after_boot is None else float(after_boot))
    except (OSError, ValueError, KeyError):
        return None


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    clean_env: bool = False,
    niceness: int = 0,
) -> ProcessRecord:
    """Start argv detached in its own session, stdout/stderr appended to log_file. The process
    inherits this one's environment plus `env`, or (`clean_env`) gets `env` alone; `niceness`
    lowers its CPU priority (its threads and children inherit it)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(env or {}) if clean_env else {**os.environ, **(env or {})}
    with log_file.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            user=user,
            start_new_session=True,  # own process group: `down` stops children too
        )
    if niceness:
        # Set from here, not by a `nice` wrapper: the recorded pid stays the server's own. The
        # child has had no time to start threads yet (an interpreter importing).
        os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
    started = psutil.Process(proc.pid)
    record = ProcessRecord(pid=proc.pid, create_time=started.create_time(), started_after_boot=since_boot(started))
    pid_file.write_text(json.dumps({"pid": record.pid, "create_time": record.create_time,
                                    "started_after_boot": record.started_after_boot, "argv": list(argv)}))
    return record


def stop(record: ProcessRecord, *, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> bool:
    """Signal the process group of a recorded process and wait; escalate to SIGKILL.

    Returns True if a live process was stopped, False if it was already gone.
    """
    proc = record.process()
    if proc is None:
        return False
    members = [proc, *proc.children(recursive=True)]
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        proc.send_signal(sig)
    _, alive = psutil.wait_procs(members, timeout=timeout_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    return True


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """Best-effort description of who listens on a port (for error messages)."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                try:
                    return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return "another process"


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def first_line_with(path: Path, offset: int, markers: Sequence[str]) -> tuple[str | None, int]:
    """The first line after byte `offset` that holds one of `markers`, and the offset read up to."""
    if not markers:
        return None, offset
    try:
        with path.open("rb") as f:
            f.seek(offset)
            new = f.read()
    except OSError:
        return None, offset
    for line in new.decode(errors="replace").splitlines():
        if any(m in line for m in markers):
            return line.strip(), offset + len(new)
    return None, offset + len(new)


def wait_until(check, *, timeout_s: float, interval_s: float = 0.2, alive=lambda: True) -> bool:
    """Poll check() until it returns truthy, the timeout passes, or alive() turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # a server still starting answers with all kinds of errors
            pass
        if not alive():
            return False
        time.sleep(interval_s)
    return False
