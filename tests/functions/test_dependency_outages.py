"""Each event function with the dependency it needs stopped during a delivery: it answers 503
naming the dependency (retried, never dead-lettered) and never the driver's text (hosts,
ports), and the same delivery succeeds once the dependency is back."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.events.codec import new_event, to_http_binary
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED
from tests.helpers import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.fault]
QUIET = {"on_progress": lambda _m: None}


def _deliver(url: str, ev) -> httpx.Response:
    headers, body = to_http_binary(ev)
    return httpx.post(url, headers=headers, content=body, timeout=120)


def _assert_unavailable(resp: httpx.Response, dependency: str) -> None:
    """503, naming the dependency and nothing of the driver's text (hosts, ports)."""
    assert resp.status_code == 503, resp.text
    assert resp.json() == {"error": "unavailable", "field": "",
                           "message": f"{dependency} is unavailable; try again shortly"}


@contextmanager
def stopped(s: Settings, name: str) -> Iterator[None]:
    devstack.down(s, [name], **QUIET)
    try:
        yield
    finally:
        devstack.up(s, [name], **QUIET)


def _interaction(user: str):
    return new_event(INTERACTION, {"user_id": user, "item_id": f"item-{uuid.uuid4().hex[:6]}", "event_type": "click"},
                     source="outage-test")


def test_feature_update_answers_503_naming_redis_then_the_same_delivery_succeeds(stack: Settings) -> None:
    url, ev = stack.function_url("feature_update") + "/", _interaction(f"redis-out-{uuid.uuid4().hex[:8]}")
    with stopped(stack, "redis"):
        _assert_unavailable(_deliver(url, ev), "Redis")
    assert wait_for(lambda: _deliver(url, ev).status_code == 200, 60, 1.0)


def test_cold_start_answers_503_naming_milvus_then_the_same_delivery_succeeds(stack: Settings) -> None:
    url = stack.function_url("cold_start_embedding") + "/"
    ev = new_event(ITEM_UPSERTED, {"item_id": f"milvus-out-{uuid.uuid4().hex[:8]}", "title": "Rose night cream",
                                   "category_path": "Beauty|Skin Care"}, source="outage-test")
    with stopped(stack, "milvus"):
        _assert_unavailable(_deliver(url, ev), "Milvus")
    resp: httpx.Response | None = None

    def delivered() -> bool:
        nonlocal resp
        resp = _deliver(url, ev)
        return resp.status_code == 200

    assert wait_for(delivered, 90, 2.0), resp.text if resp is not None else ""


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """The folder's table directories refuse new files (immutable: even root cannot write), as a
    failed or read-only disk would."""
    tables = [p for p in folder.glob("store/*/*") if p.is_dir()]
    assert tables, f"no table folders under {folder}"
    subprocess.run(["chattr", "+i", *map(str, tables)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, tables)], check=True)


def test_analytics_sink_answers_503_naming_clickhouse_while_its_disk_refuses_writes(stack: Settings) -> None:
    url, ev = stack.function_url("analytics_sink") + "/events", _interaction(f"ch-out-{uuid.uuid4().hex[:8]}")
    with unwritable(Path(stack.clickhouse.chdb_path)):
        _assert_unavailable(_deliver(url, ev), "ClickHouse")
    resp = _deliver(url, ev)
    assert resp.status_code == 200, resp.text
