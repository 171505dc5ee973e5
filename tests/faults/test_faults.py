"""Faults on the real local stack under sustained mixed load (`genrec bench faults`, shorter): each
server is stopped, killed or stalled while events and recommend requests flow, comes back, and
every accepted event is then found exactly once in PostgreSQL, applied once to Redis and stored
once in the analytics store; recommend never answers 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genrec.bench.faults import FAULTS, Fault, FaultConfig, Ledger, analytics_copies, run_fault
from genrec.config import Settings
from genrec.devstack.watch import StackWatch
from tests.helpers import catalogue_and_model

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.fault]

SHORT = FaultConfig(before_s=1.0, outage_s=4.0, after_s=2.0, event_rate=100.0, event_batch=10, item_rate=1.0,
                    recommend_clients=2, users=20, settle_s=240.0)
LEDGERS: list[Ledger] = []  # every fault's accepted events, counted in the analytics store at the end


@pytest.fixture(scope="module")
def items(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """A catalogue and a model in production, so recommend serves from the model until a fault."""
    ds, _ = catalogue_and_model(stack, 5, Path(tmp_path_factory.mktemp("faults")) / "model")
    yield [str(i) for i in ds.items.item_id]  # other tests' items hold ids an event may not carry


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name.replace(" ", "-"))
def test_nothing_accepted_is_lost_or_applied_twice_and_recommend_never_answers_5xx(
        stack: Settings, stack_watch: StackWatch, items: list[str], fault: Fault) -> None:
    row, ledger = run_fault(stack, fault, SHORT, items, watch=stack_watch)
    LEDGERS.append(ledger)
    assert row["accepted"] > 0 and not row["rejected"], row
    assert row["abandoned"] == 0, row  # every batch refused during the fault was accepted once it was over
    assert row["postgres"] == {"lost": 0, "duplicated": 0}, row
    assert row["redis"] == {"lost": 0, "duplicated": 0, "undercounted": 0}, row
    assert row["items"]["lost_postgres"] == 0 and row["items"]["lost_milvus"] == 0, row
    assert row["recommend"]["server_errors"] == 0, row["recommend"]
    if fault.service != "recommend":  # its own process is the only thing that may refuse a connection
        assert row["recommend"]["unreachable"] == 0, row["recommend"]


def test_every_accepted_event_is_once_in_the_analytics_store(stack: Settings, stack_watch: StackWatch) -> None:
    ids = [event_id for ledger in LEDGERS for event_id in ledger.accepted_at]
    if not ids:
        pytest.skip("no fault ran in this session")
    copies, _stored = analytics_copies(stack, ids, SHORT.settle_s, watch=stack_watch)
    missing = [e for e in ids if e not in copies]
    assert not missing, f"{len(missing)} of {len(ids)} accepted events missing, e.g. {missing[:5]}"
    assert all(copies[e] == 1 for e in ids)
