"""The front end's Vitest suite (component and unit tests in jsdom), run as part of pytest."""

from __future__ import annotations

import os
import subprocess

from tests.frontend.conftest import FRONTEND


def test_vitest_suite(node: str) -> None:
    proc = subprocess.run([node, "node_modules/vitest/vitest.mjs", "run"], cwd=FRONTEND, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "CI": "true", "NO_COLOR": "1"})
    print(proc.stdout[-6000:], proc.stderr[-3000:])
    assert proc.returncode == 0, "vitest failed:\n" + proc.stdout[-6000:] + proc.stderr[-3000:]
