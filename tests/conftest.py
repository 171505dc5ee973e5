"""Shared fixtures: one isolated embedded stack per test session, on free ports."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from genrec.config import PORT_OFFSETS, Settings, get_settings
from genrec.devstack import stack as devstack
from genrec.devstack.process import port_is_free
from genrec.devstack.services import SEAWEED_GRPC_OFFSET

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _free_port_base(host: str = "127.0.0.1") -> int:
    """A port base whose every derived port (and SeaweedFS grpc twin) is free."""
    rng = random.Random()
    span = max(PORT_OFFSETS.values()) + 1
    for _ in range(200):
        base = rng.randrange(20000, 40000, 100)
        ports = [base + i for i in range(span)] + [base + i + SEAWEED_GRPC_OFFSET for i in range(8)]
        if all(port_is_free(host, p) for p in ports):
            return base
    raise RuntimeError("no free port range for a test stack")


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment that points genrec at a private stack (state dir + port base)."""
    state = tmp_path_factory.mktemp("genrec-stack")
    env = {
        "GENREC_STACK__PORT_BASE": str(_free_port_base()),
        "GENREC_STACK__STATE_DIR": str(state),
        "GENREC_MODEL__ARTIFACTS_DIR": str(state / "artifacts"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str]) -> Iterator[Settings]:
    """The embedded local stack, started once per session and stopped at the end."""
    settings = get_settings()
    devstack.up(settings, on_progress=lambda _m: None)
    try:
        yield settings
    finally:
        devstack.down(settings, on_progress=lambda _m: None)


@pytest.fixture
def settings(stack: Settings) -> Settings:
    return stack


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fault tests stop and restart servers of the session's shared stack: run them last."""
    items.sort(key=lambda item: item.get_closest_marker("fault") is not None)
