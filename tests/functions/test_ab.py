"""The live A/B between production and a canary, simulated end to end on the running stack:
10,000 users ask for lists (recommend-grpc, BatchGenerate), each list says its arm, users click
at rates planted per arm (feedback, joined by request_id in the analytics store), and the
report finds the better arm with its interval while the 90/10 split holds to +-2 %."""

from __future__ import annotations

import json
import random
import time
import uuid

import grpc
import httpx
import pytest
from typer.testing import CliRunner

from genrec.api.recommend.v1 import recommend_pb2 as pb
from genrec.api.recommend.v1 import recommend_pb2_grpc as pb_grpc
from genrec.cli import app as cli
from genrec.config import Settings
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.contracts import INTERACTION
from genrec.serving.artifact import Canary, set_canary
from genrec.stores.hot_state import HotState, Interaction, redis_client
from tests.helpers import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]

USERS = 10_000
CANARY_WEIGHT = 0.1
PLANTED_CTR = {"production": 0.08, "canary": 0.12}
CONVERTING = 0.25  # of the clicked lists, the share that also buys


@pytest.fixture
def canary(stack: Settings):
    """A canary taking 10 % of users (a fresh version: a fresh sample), removed afterwards."""
    slot = Canary(uri="s3://genrec/models/ab-simulation", version=f"ab-{uuid.uuid4().hex[:8]}", weight=CANARY_WEIGHT)
    r = redis_client(stack)
    set_canary(r, slot)
    time.sleep(2.5)  # recommend re-reads the canary slot this often (genrec.recommend.experiment)
    yield slot
    set_canary(r, None)


def _feedback(user: str, request_id: str, kind: str) -> dict:
    """A click or purchase as the recommend API's feedback endpoint writes it: its context names the list."""
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "ab-simulation", "type": INTERACTION,
            "data": {"user_id": user, "item_id": "ab-item", "event_type": kind, "context": {"request_id": request_id}}}


def _admin_ab(stack: Settings, hours: float) -> dict:
    token = next(iter(stack.auth.admin_tokens.values())).get_secret_value()  # any role may read
    resp = httpx.get(stack.function_url("admin_api") + "/api/v1/analytics/ab", params={"hours": hours},
                     headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_canary_split_and_its_better_click_through_show_up_in_the_report(stack: Settings, canary: Canary) -> None:
    started = time.time()
    rng = random.Random(20261203)
    users = [f"ab-{canary.version}-{k}" for k in range(USERS)]
    lists: list[tuple[str, str, str]] = []  # (user, request_id, variant)
    with grpc.insecure_channel(f"{stack.stack.host}:{stack.stack.port('recommend_grpc')}") as channel:
        stub = pb_grpc.RecommendServiceStub(channel)
        for start in range(0, USERS, 64):
            got = stub.BatchGenerate(pb.BatchGenerateRequest(
                requests=[pb.GenerateRequest(user_id=u, count=5) for u in users[start:start + 64]]), timeout=60)
            lists += [(r.user_id, r.request_id, r.variant) for r in got.responses]
        # The arm can be named for testing: a production user served from the canary's arm.
        named = stub.Generate(pb.GenerateRequest(user_id="ab-named", count=3), timeout=30,
                              metadata=((("x-genrec-variant", "canary"),)))
        assert named.variant == "canary"
    # Sticky: the arm is a stable hash of the canary's version and the user, the same on every replica.
    assert all(v == ("canary" if canary.takes(u) else "production") for u, _, v in lists)
    share = sum(v == "canary" for _, _, v in lists) / USERS
    assert abs(share - CANARY_WEIGHT) <= 0.02

    # Feedback as the recommend API's feedback endpoint writes it (an interaction whose context names
    # the list's request_id), sent as the shop's backend would at this volume: in batches, one produce
    # request each (a thousand single ones would grow the local broker's log for every later test).
    # Each arm's click-through is planted exactly (a random draw per list would put the planted
    # difference outside the 95 % interval in one run of twenty).
    clicked = {v: 0 for v in PLANTED_CTR}
    feedback = []
    for variant, ctr in PLANTED_CTR.items():
        arm = [(user, request_id) for user, request_id, v in lists if v == variant]
        clicking = rng.sample(arm, round(ctr * len(arm)))
        clicked[variant] = len(clicking)
        feedback += [_feedback(user, request_id, kind) for user, request_id in clicking
                     for kind in ["click"] + (["purchase"] if rng.random() < CONVERTING else [])]
    with httpx.Client(timeout=60) as http:
        for start in range(0, len(feedback), 500):
            resp = http.post(stack.function_url("event_capture") + "/api/v1/events",
                             content=json.dumps(feedback[start:start + 500]),
                             headers={"content-type": BATCH_CONTENT_TYPE})
            assert resp.status_code == 202, resp.text
    # and one through the feedback endpoint itself
    resp = httpx.post(stack.function_url("recommend") + "/api/v1/recommend/feedback", timeout=30, json={
        "user_id": "ab-named", "item_id": "ab-item", "feedback": "click", "request_id": named.request_id})
    assert resp.status_code == 202, resp.text
    clicked["canary"] += 1

    hours = (time.time() - started + 120) / 3600  # this test's lists (and none long before)
    report: dict = {}

    def counted() -> bool:
        nonlocal report
        report = _admin_ab(stack, hours)
        ctr = report["ctr"]
        return (ctr["production"]["lists"] + ctr["canary"]["lists"] >= USERS
                and ctr["production"]["clicked"] >= clicked["production"]
                and ctr["canary"]["clicked"] >= clicked["canary"])

    assert wait_for(counted, 120, 1.0), report
    ctr = report["ctr"]
    assert abs(report["canary_share"] - CANARY_WEIGHT) <= 0.02
    assert ctr["better"] == "canary" and ctr["p_value"] < 0.05 and ctr["canary_not_worse"]
    lo, hi = ctr["difference_interval"]
    assert lo > 0 and lo < PLANTED_CTR["canary"] - PLANTED_CTR["production"] < hi
    for arm, planted in PLANTED_CTR.items():
        assert ctr[arm]["interval"][0] <= ctr[arm]["rate"] <= ctr[arm]["interval"][1]
        assert abs(ctr[arm]["rate"] - planted) < 0.03, arm
    assert report["conversion"]["canary"]["converted"] > 0 and report["timeline"]
    # The command line says the same.
    out = CliRunner().invoke(cli, ["ab", "report", "--hours", str(hours), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["ctr"]["better"] == "canary"
    # Promotion waits for evidence first.
    out = CliRunner().invoke(cli, ["ab", "promote", "--hours", str(hours), "--min-lists", "100000"])
    assert out.exit_code == 1 and "fewer than 100000 lists" in out.output


def test_a_canary_users_cached_list_is_not_served_once_the_canary_is_replaced(stack: Settings, canary: Canary) -> None:
    user = f"ab-replaced-{uuid.uuid4().hex[:8]}"
    # a popularity board to rank from (a list with items is cached; an empty one is not)
    HotState(stack).apply_interactions_once([Interaction("ab-test", f"{user}-seed", f"{user}-seeder", f"{user}-item")])
    arm = (("x-genrec-variant", "canary"),)
    with grpc.insecure_channel(f"{stack.stack.host}:{stack.stack.port('recommend_grpc')}") as channel:
        stub = pb_grpc.RecommendServiceStub(channel)

        def served_by() -> str:
            return stub.Generate(pb.GenerateRequest(user_id=user, count=3), timeout=30, metadata=arm).served_by

        first = served_by()
        assert served_by() == "cache" != first  # the canary arm's list, cached for this canary
        set_canary(redis_client(stack), Canary(uri=canary.uri, version=f"{canary.version}-next", weight=canary.weight))
        time.sleep(2.5)  # recommend re-reads the canary slot this often
        assert served_by() == first  # ranked again for the new canary, not the old one's list
