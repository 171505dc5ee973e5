"""`genrec dev up | down | status | logs`: the embedded local stack as one unit."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from genrec.config import Settings
from genrec.devstack.process import (
    StackError,
    first_line_with,
    log_size,
    port_is_free,
    port_owner,
    read_record,
    spawn,
    stop,
    tail,
    wait_until,
)
from genrec.devstack.services import SERVICES, Service, StackPaths


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    description: str
    production: str
    endpoint: str
    pid: int | None
    healthy: bool


def paths_for(s: Settings) -> StackPaths:
    return StackPaths(s.stack.state_dir.resolve())


def _selected(names: list[str] | None) -> list[Service]:
    if not names:
        return list(SERVICES.values())
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {list(SERVICES)}")
    wanted = set(names)
    # Pull in dependencies so `dev up kafka` also brings up the object store it logs to.
    for svc in list(SERVICES.values())[::-1]:
        if svc.name in wanted:
            wanted.update(svc.depends_on)
    return [svc for svc in SERVICES.values() if svc.name in wanted]


def _running(svc: Service, paths: StackPaths):
    record = read_record(paths.pid(svc.name))
    return record.process() if record else None


def _start(svc: Service, s: Settings, paths: StackPaths) -> int:
    """Spawn the server; returns where its log stood before (what follows is this run's)."""
    host = s.stack.host
    for port in svc.ports(s):
        if not port_is_free(host, port):
            raise StackError(
                f"{svc.name}: port {host}:{port} is already in use by {port_owner(port)}. "
                f"Stop that process or move the local stack with GENREC_STACK__PORT_BASE."
            )
    svc.prepare(s, paths)
    log_start = log_size(paths.log(svc.name))
    spawn(
        svc.argv(s, paths), log_file=paths.log(svc.name), pid_file=paths.pid(svc.name),
        env=svc.env(s), user=svc.run_as, cwd=svc.cwd(s), niceness=svc.niceness,
    )
    return log_start


def _await_healthy(svc: Service, s: Settings, paths: StackPaths, log_start: int) -> None:
    log = paths.log(svc.name)
    crash: str | None = None

    def alive() -> bool:  # the process runs and has logged no crash (a server can crash yet live on)
        nonlocal crash, log_start
        crash, log_start = first_line_with(log, log_start, svc.crash_markers)
        return crash is None and _running(svc, paths) is not None

    if not wait_until(lambda: svc.healthy(s), timeout_s=s.stack.start_timeout_s, alive=alive):
        if crash is not None:
            state = f"crashed ({crash})"
        else:
            state = "exited" if _running(svc, paths) is None else "did not become healthy"
        raise StackError(f"{svc.name} {state}; its log is {log}:\n{tail(log)}")
    svc.provision(s)


def up(s: Settings, names: list[str] | None = None, *, on_progress=print) -> list[ServiceStatus]:
    """Start every selected server that is not already running; wait until each is healthy.

    Idempotent: a server already running from this state directory is left alone. Servers
    are started wave by wave (a wave's dependencies are healthy before it starts).
    """
    paths = paths_for(s)
    for d in (paths.data, paths.logs, paths.pids):
        d.mkdir(parents=True, exist_ok=True)
    pending = _selected(names)
    done: set[str] = set()
    while pending:
        wave = [svc for svc in pending if set(svc.depends_on) <= done | _not_selected(pending, done)]
        log_starts: dict[str, int] = {}
        for svc in wave:
            if _running(svc, paths) is None:
                on_progress(f"starting {svc.name}: {svc.description}")
                log_starts[svc.name] = _start(svc, s, paths)
            else:
                on_progress(f"{svc.name} already running")
                log_starts[svc.name] = log_size(paths.log(svc.name))
        for svc in wave:
            _await_healthy(svc, s, paths, log_starts[svc.name])
            done.add(svc.name)
        pending = [svc for svc in pending if svc.name not in done]
    return status(s, names)


def _not_selected(pending: list[Service], done: set[str]) -> set[str]:
    """Dependencies outside this `up` call are assumed handled elsewhere."""
    return set(SERVICES) - {svc.name for svc in pending} - done


def down(s: Settings, names: list[str] | None = None, *, on_progress=print) -> list[str]:
    """Stop selected servers by their recorded pids, dependents first."""
    paths = paths_for(s)
    stopped = []
    selected = [SERVICES[n] for n in names if n in SERVICES] if names else list(SERVICES.values())
    for svc in reversed(selected):
        record = read_record(paths.pid(svc.name))
        # The pid file goes first: a watcher (genrec.devstack.watch) then knows the exit is planned.
        paths.pid(svc.name).unlink(missing_ok=True)
        if record and stop(record, sig=svc.stop_signal):
            on_progress(f"stopped {svc.name} (pid {record.pid})")
            stopped.append(svc.name)
    return stopped


def status(s: Settings, names: list[str] | None = None) -> list[ServiceStatus]:
    paths = paths_for(s)
    rows = []
    for svc in _selected(names):
        proc = _running(svc, paths)
        healthy = False
        if proc is not None:
            try:
                healthy = bool(svc.healthy(s))
            except Exception:
                healthy = False
        rows.append(
            ServiceStatus(
                name=svc.name, description=svc.description, production=svc.production,
                endpoint=svc.endpoint(s), pid=proc.pid if proc else None, healthy=healthy,
            )
        )
    return rows


def local_processes(s: Settings) -> dict[str, psutil.Process]:
    """The running servers of the local stack by service name (none against remote servers)."""
    paths = paths_for(s)
    return {svc.name: proc for svc in SERVICES.values() if (proc := _running(svc, paths)) is not None}


def logs(s: Settings, name: str, lines: int = 50) -> str:
    if name not in SERVICES:
        raise StackError(f"unknown service {name!r}; known: {list(SERVICES)}")
    return tail(paths_for(s).log(name), lines)
