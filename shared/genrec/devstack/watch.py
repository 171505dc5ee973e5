"""Notice at once when a local server dies or breaks while a long job (the demo, a test
session) relies on it, and say which one, with the end of its log.

Without this, a crashed server shows up minutes later as a timeout or a client error far
from the cause. A server stopped on purpose (`genrec dev down`) removes its pid file first,
so only an unplanned exit counts; a server restarted by `up` is followed under its new pid.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from genrec.config import Settings
from genrec.devstack.process import ProcessRecord, StackError, first_line_with, log_size, read_record, tail
from genrec.devstack.services import SERVICES, Service
from genrec.devstack.stack import paths_for


class ServerCrashed(StackError):
    """A local server exited or logged a crash while the stack was in use."""


class StackWatch:
    """Polls the running servers' processes and the new lines of their logs."""

    def __init__(self, s: Settings, on_crash: Callable[[ServerCrashed], None], interval_s: float = 0.5) -> None:
        self._paths = paths_for(s)
        self._on_crash = on_crash
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-watch", daemon=True)
        self._records: dict[str, ProcessRecord] = {}
        self._log_offsets: dict[str, int] = {}
        self._planned: dict[str, ProcessRecord] = {}
        self.crash: ServerCrashed | None = None
        for svc in SERVICES.values():
            self._follow(svc)

    def start(self) -> StackWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def expect_exit(self, name: str) -> None:
        """The server's current process is about to be killed on purpose (a crash test)."""
        record = read_record(self._paths.pid(name))
        if record is not None:
            self._planned[name] = record

    def expect_back(self, name: str) -> None:
        """The server ``expect_exit`` named runs on (it survived, or was started again): watch it again."""
        self._planned.pop(name, None)

    def _follow(self, svc: Service) -> None:
        """Take the server's current process as the one to watch, and its log from here on."""
        record = read_record(self._paths.pid(svc.name))
        if record is None or record.process() is None:
            self._records.pop(svc.name, None)
            return
        self._records[svc.name] = record
        self._log_offsets[svc.name] = log_size(self._paths.log(svc.name))

    def check(self) -> ServerCrashed | None:
        """The first server found dead or broken since the last check, if any."""
        for svc in SERVICES.values():
            current = read_record(self._paths.pid(svc.name))
            if current is None or current == self._planned.get(svc.name):  # stopped on purpose, or never started
                self._records.pop(svc.name, None)
                continue
            if self._records.get(svc.name) != current:  # (re)started since: follow the new process
                self._follow(svc)
                continue
            if current.process() is None:
                return self._crashed(svc, "exited unexpectedly")
            marker = self._new_crash_line(svc)
            if marker:
                return self._crashed(svc, f"logged a crash: {marker}")
        return None

    def _new_crash_line(self, svc: Service) -> str | None:
        line, self._log_offsets[svc.name] = first_line_with(
            self._paths.log(svc.name), self._log_offsets.get(svc.name, 0), svc.crash_markers)
        return line

    def _crashed(self, svc: Service, what: str) -> ServerCrashed:
        self._records.pop(svc.name, None)  # report each crash once
        log: Path = self._paths.log(svc.name)
        return ServerCrashed(f"local server '{svc.name}' ({svc.description}) {what}. Its log is {log}; "
                             f"the last lines:\n{tail(log, 20)}")

    def settle(self, within_s: float = 2.0) -> ServerCrashed | None:
        """A crash that shows within `within_s` (the poller stopped first: one reader at a time)."""
        self.stop()
        deadline = time.monotonic() + within_s
        while self.crash is None:
            self.crash = self.check()
            if self.crash is not None or time.monotonic() > deadline:
                break
            time.sleep(self._interval_s)
        return self.crash

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            crash = self.check()
            if crash is not None:
                self.crash = crash
                self._on_crash(crash)


@contextlib.contextmanager
def crash_guard(s: Settings) -> Iterator[StackWatch]:
    """Run the body with the local stack watched: a server that crashes meanwhile raises
    ServerCrashed in the main thread at once (waits and blocking calls are interrupted)."""
    main = threading.main_thread()

    def interrupt(_crash: ServerCrashed) -> None:
        signal.pthread_kill(main.ident, signal.SIGUSR1)

    watch = StackWatch(s, interrupt)

    def raise_crash(_signum, _frame) -> None:
        if watch.crash is not None:
            raise watch.crash

    previous = signal.signal(signal.SIGUSR1, raise_crash)
    watch.start()
    try:
        yield watch
    except Exception as exc:
        # A client often sees the crash (a dropped connection) before the server has logged it
        # or the next poll has read it: name the server rather than show the client's error.
        crash = watch.crash or watch.settle()
        if crash is not None and crash is not exc:
            raise crash from exc
        raise
    finally:
        watch.stop()
        signal.signal(signal.SIGUSR1, previous)
