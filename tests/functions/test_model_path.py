"""The generative path end to end: events change a user's next generated list, and the
recommend API keeps answering (from the fallbacks) while the model server is down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.events.codec import new_event, to_http_binary
from genrec.events.contracts import INTERACTION
from genrec.stores.hot_state import HotState
from tests.helpers import catalogue_and_model, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def promoted(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A quickly trained model in production, its items in the catalogue."""
    ds, art = catalogue_and_model(stack, 11, Path(tmp_path_factory.mktemp("model-path")) / "v1")
    yield {"ds": ds, "artifact": art}


def _for_user(s: Settings, user: str) -> dict:
    resp = httpx.get(s.function_url("recommend") + f"/api/v1/recommend/user/{user}", params={"count": 10},
                     timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _click(s: Settings, user: str, item: str) -> None:
    headers, body = to_http_binary(new_event(INTERACTION, {"user_id": user, "item_id": item, "event_type": "click"},
                                             source="model-path-test"))
    resp = httpx.post(s.function_url("event_capture") + "/api/v1/events", headers=headers, content=body, timeout=30)
    assert resp.status_code == 202, resp.text


def _history_user(s: Settings, promoted: dict) -> str:
    """A fresh user whose recent items are a real user's first three."""
    ds = promoted["ds"]
    user = f"mp-{uuid.uuid4().hex[:8]}"
    first = ds.interactions[ds.interactions.user_id == ds.interactions.user_id.iloc[0]]
    HotState(s).append_recent_items(user, [str(i) for i in first.item_id.iloc[:3]])
    return user


def test_clicks_change_that_users_next_generated_recommendations(stack: Settings, promoted: dict) -> None:
    user = f"mp-{uuid.uuid4().hex[:8]}"
    ds = promoted["ds"]
    for item in ds.interactions.item_id.iloc[:3]:
        _click(stack, user, str(item))
    body: dict = {}

    def generated_with(n_history: int) -> bool:
        # History first: a list asked for while the clicks were still being applied (they may
        # arrive as one batch) was generated from fewer items and must not count.
        if len(HotState(stack).recent_items(user, 50)) != n_history:
            return False
        nonlocal body
        body = _for_user(stack, user)
        return body["served_by"] == "model"

    assert wait_for(lambda: generated_with(3), 30, 0.25), body
    before = [i["item_id"] for i in body["items"]]
    assert body["algorithm_version"] == promoted["artifact"].version and len(before) == 10
    # Clicking the top three makes them history: the next list is generated again (not cached),
    # without them, and differs from the first.
    for item in before[:3]:
        _click(stack, user, item)
    assert wait_for(lambda: generated_with(6), 30, 0.25), body
    after = [i["item_id"] for i in body["items"]]
    assert after != before and not set(before[:3]) & set(after)


def test_recommend_falls_back_while_the_model_server_is_down(stack: Settings, promoted: dict) -> None:
    from genrec.serving.client import ModelClient
    from tests.serving.conftest import wait_ready

    assert _for_user(stack, _history_user(stack, promoted))["served_by"] == "model"
    devstack.down(stack, ["model-server"], on_progress=lambda _m: None)
    try:
        # Every request still answers 200 with a list, saying which fallback served it.
        for _ in range(5):
            body = _for_user(stack, _history_user(stack, promoted))
            assert body["served_by"] in ("vector", "popularity"), body
            assert body["algorithm_version"] == "fallback"
        metrics = httpx.get(stack.function_url("recommend") + "/metrics", timeout=10).text
        fallbacks = [line for line in metrics.splitlines() if line.startswith("recommendations_served_total{")
                     and ('"vector"' in line or '"popularity"' in line)]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in fallbacks) >= 5
    finally:
        devstack.up(stack, ["model-server"], on_progress=lambda _m: None)
    wait_ready(ModelClient(stack), promoted["artifact"].version)
    # The circuit breaker lets a probe through after its reset time: the model serves again.
    body = {}

    def model_again() -> bool:
        nonlocal body
        body = _for_user(stack, _history_user(stack, promoted))
        return body["served_by"] == "model"

    assert wait_for(model_again, 60, 0.5), body


def test_the_load_benchmark_measures_a_short_mixed_run(stack: Settings, promoted: dict, tmp_path: Path) -> None:
    from genrec.bench.load import LoadConfig, run_load, write_results

    cfg = LoadConfig(duration_s=5, recommend_processes=1, recommend_threads=1, event_processes=1, event_threads=1,
                     event_batch=20, freshness_probes=2, new_item_probes=0, history_len=3, profile=True)
    r = run_load(cfg)
    rec, events = r["recommend"], r["events"]
    assert rec["requests"] > 0 and rec["statuses"] == {"200": rec["requests"]} and rec["server_errors"] == 0
    assert rec["served_by"].get("model", 0) > 0 and r["model_version"] == promoted["artifact"].version
    assert events["accepted"] > 0 and events["accepted"] % 20 == 0 and events["failed_batches"] == 0
    assert r["freshness_ms"]["n"] >= 1 and r["freshness_ms"]["p50"] > 0
    assert r["consumer_lag"]["drain_seconds"] is not None  # every subscription caught up after the load
    # The log the broker holds, as its retention last measured it (the run states its log size).
    assert r["broker_log"]["user_events"]["records_written"] > 0
    assert r["broker_log"]["user_events"]["batches_stored"] > 0
    # Where the CPU went: each local server that served the run, and the load clients themselves.
    assert {"recommend", "event-capture", "bridge", "feature-update", "load clients"} <= set(r["cpu_percent"])
    assert r["cpu_percent"]["recommend"] > 0 and r["cpu_percent"]["event-capture"] > 0
    # What the model server served equals the reference graph on the same table.
    assert r["parity"]["users"] == 32 and r["parity"]["version"] == promoted["artifact"].version
    assert r["parity"]["mean_item_match"] >= 0.99 and r["parity"]["max_score_diff"] < 1e-3
    # The profile: CPU per request and per event, recommend's Python time split by what it was doing.
    budgets = {b["unit"]: b for b in r["cpu_budget"]}
    assert budgets["request"]["units"] == rec["requests"] and budgets["event"]["units"] == events["accepted"]
    recommend = budgets["request"]["processes"]["recommend"]
    assert recommend["cpu_ms"] > 0 and recommend["samples"] > 0
    assert any(c.startswith("genrec: genrec.recommend") for c in recommend["categories"]), recommend
    write_results(r, tmp_path, "smoke")
    assert "CPU during the load" in (tmp_path / "load-smoke.md").read_text()
    assert "CPU budget per request" in (tmp_path / "load-smoke.md").read_text()
    assert (tmp_path / "load-smoke.json").is_file() and (tmp_path / "load-smoke.png").is_file()


def test_a_scheduled_load_run_states_answer_times_apart_from_schedule_times(stack: Settings, promoted: dict,
                                                                          tmp_path: Path) -> None:
    """On a schedule, latency counts from each request's scheduled time (a client still waiting on
    its previous answer makes the next one late, and that wait counts); the report also states the
    answers' own time from send, so the server's share of the tail is read, not guessed."""
    from genrec.bench.load import LoadConfig, run_load, write_results

    cfg = LoadConfig(duration_s=4, recommend_processes=1, recommend_threads=2, recommend_rate=20, event_processes=0,
                     event_threads=0, freshness_probes=0, new_item_probes=0, history_len=3)
    r = run_load(cfg)
    rec = r["recommend"]
    assert rec["requests"] > 0 and rec["statuses"] == {"200": rec["requests"]}
    for q in ("p50", "p99", "max"):
        assert 0 < rec["answer_ms"][q] <= rec["latency_ms"][q]
    write_results(r, tmp_path, "paced")
    assert "recommend answers, from send" in (tmp_path / "load-paced.md").read_text()
