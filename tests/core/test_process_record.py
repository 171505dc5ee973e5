"""A recorded server stays recognised when the wall clock steps (NTP, a VM paused or migrated):
`genrec dev status` called every server stopped after a 24 s step on a shared VM, and `dev up`
then refused to start them on ports they still held."""

from __future__ import annotations

import sys

import psutil
import pytest

from genrec.devstack import process
from genrec.devstack.process import read_record, spawn


def test_a_wall_clock_step_does_not_lose_a_running_server(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = spawn([sys.executable, "-c", "import time; time.sleep(60)"], log_file=tmp_path / "s.log",
                   pid_file=tmp_path / "s.pid")
    try:
        assert read_record(tmp_path / "s.pid").process() is not None
        boot_time = psutil._psplatform.boot_time
        monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: boot_time() + 24.0)  # the clock stepped
        assert abs(psutil.Process(record.pid).create_time() - record.create_time - 24.0) < 1.0
        assert read_record(tmp_path / "s.pid").process() is not None
    finally:
        process.stop(record, timeout_s=5)
    assert read_record(tmp_path / "s.pid").process() is None
