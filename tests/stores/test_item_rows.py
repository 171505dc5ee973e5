"""The recommend path's item rows: reused for ``item_rows_max_age_s``, re-read after it, and the
remembered ones served (degraded) while PostgreSQL cannot answer."""

from __future__ import annotations

import time

import pytest

from genrec.config import Settings
from genrec.recommend.guard import StoreGuard
from genrec.recommend.item_rows import ItemRows
from genrec.stores.catalog_repo import Item
from genrec.stores.postgres import UNAVAILABLE
from genrec.stores.resources import Resources

pytestmark = pytest.mark.stack


def test_rows_are_reused_while_young_and_read_again_once_old(stack: Settings, uid: str) -> None:
    res = Resources(stack)
    guard = StoreGuard("PostgreSQL", budget_s=2.0, unavailable=UNAVAILABLE)
    rows = ItemRows(res, guard, max_age_s=0.5)
    try:
        res.catalog.upsert(Item(f"{uid}-a", title="first"))
        res.catalog.upsert(Item(f"{uid}-b", title="other"))
        got, degraded = rows.get_many([f"{uid}-a", f"{uid}-missing", f"{uid}-b", f"{uid}-a"])
        assert [r.item_id for r in got] == [f"{uid}-a", f"{uid}-b"] and not degraded  # in order, once each
        res.catalog.upsert(Item(f"{uid}-a", title="renamed"))
        assert rows.get(f"{uid}-a")[0].title == "first"  # young: no query
        time.sleep(0.6)
        assert rows.get(f"{uid}-a")[0].title == "renamed"  # old: read again
        assert ItemRows(res, guard, max_age_s=0).get(f"{uid}-a")[0].title == "renamed"
    finally:
        guard.close()
        res.close()


def test_without_postgresql_the_remembered_rows_serve_however_old(stack: Settings, uid: str) -> None:
    res = Resources(stack)
    guard = StoreGuard("PostgreSQL", budget_s=2.0, failures=1, reset_s=60, unavailable=UNAVAILABLE)
    rows = ItemRows(res, guard, max_age_s=0)
    try:
        res.catalog.upsert(Item(f"{uid}-a", title="kept"))
        rows.get(f"{uid}-a")
        res.close()  # the pool is gone: every query now fails as an outage
        got, degraded = rows.get_many([f"{uid}-never-seen", f"{uid}-a"])
        assert [r.title for r in got] == ["kept"] and degraded
    finally:
        guard.close()
