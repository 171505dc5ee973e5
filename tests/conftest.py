"""Shared fixtures: one isolated embedded stack per test session, on free ports."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from genrec.config import Settings, get_settings
from genrec.devstack import stack as devstack
from genrec.devstack.watch import StackWatch, crash_guard
from tests.helpers import NO_AVX512_EMULATOR, free_port_base

STACK_WATCH = pytest.StashKey[StackWatch]()

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No GENREC_* variable and an empty working directory (no genrec.toml): the defaults alone."""
    for key in list(os.environ):
        if key.startswith("GENREC_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment that points genrec at a private stack (state dir + port base)."""
    state = tmp_path_factory.mktemp("genrec-stack")
    env = {
        "GENREC_STACK__PORT_BASE": str(free_port_base()),
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
def stack(stack_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The embedded local stack, started once per session and stopped at the end."""
    settings = get_settings()
    devstack.up(settings, on_progress=lambda _m: None)
    try:
        # A server that crashes mid-session fails the running test at once, named, with its log.
        with crash_guard(settings) as watch:
            request.config.stash[STACK_WATCH] = watch
            yield settings
    finally:
        devstack.down(settings, on_progress=lambda _m: None)


@pytest.fixture
def stack_watch(stack: Settings, request: pytest.FixtureRequest) -> StackWatch:
    """The session stack's crash watch (tests that kill a server on purpose tell it first)."""
    return request.config.stash[STACK_WATCH]


@pytest.fixture(autouse=True)
def _collector_unfrozen() -> Iterator[None]:
    """An app started in a test freezes the heap (``genrec.heap``), which suits a server, not a
    test process: what a test left behind is collectable again after it."""
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _stop_after_a_server_crash(request: pytest.FixtureRequest) -> None:
    """Once a server of the session stack has crashed, every later result would be noise."""
    watch = request.config.stash.get(STACK_WATCH, None)
    if watch is not None and watch.crash is not None:
        pytest.exit(f"stopping the session: {watch.crash}", returncode=1)


@pytest.fixture(scope="session")
def no_avx512_stack(tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]) -> Iterator[Settings]:
    """A second local stack whose native servers run as a CPU without AVX-512 would."""
    if shutil.which(NO_AVX512_EMULATOR.split()[0]) is None:
        pytest.fail("qemu-x86_64 is missing (Debian's qemu-user): run `make install`")
    state = tmp_path_factory.mktemp("no-avx512-stack")
    settings = Settings(model={"artifacts_dir": state / "artifacts"}, stack={
        "state_dir": state,
        "port_base": free_port_base(taken=int(stack_env["GENREC_STACK__PORT_BASE"])),
        "cpu_emulator": NO_AVX512_EMULATOR, "start_timeout_s": 300.0,  # an emulated start is slower
    })
    try:
        devstack.up(settings, ["s3", "kafka", "postgres", "redis", "milvus"], on_progress=lambda _m: None)
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
