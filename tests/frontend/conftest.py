"""Fixtures for the front-end tests: the built app, node, Debian Chromium, and a seeded stack."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from genrec.config import Settings
from tests.admin.seed import World, seed_world

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require(condition: bool, why: str) -> None:
    """Missing tooling fails in CI (the Makefile installs it) and skips on a developer machine."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must install it: `make install`)")
        pytest.skip(why)


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    require(found is not None, "node is not installed")
    require((FRONTEND / "node_modules" / "vitest").is_dir(), "frontend/node_modules is missing: run `make install`")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="session")
def world(stack: Settings) -> World:
    return seed_world(stack)
