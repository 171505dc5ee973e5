"""cold-start-embedding on the real stack: a new item becomes generatable within seconds."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from genrec.config import Settings
from genrec.events.codec import new_event, to_http_binary
from genrec.events.contracts import ITEM_UPSERTED, USER_UPSERTED
from genrec.stores.catalog_repo import CatalogRepo
from genrec.stores.postgres import make_pool
from genrec.stores.users_repo import UserRepo

pytestmark = pytest.mark.stack

QUICK = {
    "max_history": 8, "top_k": 50, "val_beam_width": 10, "test_beam_width": 10, "threads": 2,
    "embeddings": {"mode": "text"},
    "tokenizer": {"method": "rqkmeans", "levels": 2, "codebook_size": 8, "latent_dim": 16,
                  "disambiguation_size": 64, "kmeans_iters": 5},
    "model": {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64, "user_buckets": 7},
    "optim": {"epochs": 1, "batch_size": 64, "warmup_steps": 5},
}


def _post(s: Settings, ev) -> None:
    headers, body = to_http_binary(ev)
    resp = httpx.post(s.function_url("event_capture") + "/api/v1/events", headers=headers, content=body)
    assert resp.status_code == 202, resp.text


def _wait(cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.25)
    return False


def test_new_item_is_generatable_within_seconds_of_its_upsert(stack: Settings, tmp_path: Path) -> None:
    from genrec.data import SynthConfig, generate_synthetic
    from genrec.serving.artifact import set_current
    from genrec.serving.client import ModelClient
    from genrec.stores.hot_state import redis_client
    from genrec.training import TrainConfig, train_generative
    from tests.serving.conftest import wait_ready

    ds = generate_synthetic(SynthConfig(n_items=60, n_users=80, seed=3))
    out = tmp_path / f"cold-{uuid.uuid4().hex[:6]}"
    train_generative(ds, TrainConfig.model_validate(QUICK), out_dir=out, progress=False, evaluate_test=False)
    art = set_current(out, stack, redis_client(stack))
    wait_ready(ModelClient(stack), art.version)

    new_id = f"NEW-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    _post(stack, new_event(ITEM_UPSERTED, {"item_id": new_id, "title": "Silk rose night serum",
                                           "category_path": "Beauty|Skin Care|Serum", "price": 24.0},
                           source="cold-start-test"))
    pool = make_pool(stack)
    catalog = CatalogRepo(pool)
    assert _wait(lambda: (catalog.get(new_id) or None) is not None and catalog.get(new_id).semantic_ids, 60)
    item = catalog.get(new_id)
    pool.close()
    assert item.embedding is not None and len(item.semantic_ids) == 3  # 2 levels + disambiguation
    # A session holding every trained item excludes all of them: only the new item can be generated,
    # so it comes back only if the model server's code table already has it.
    url = stack.function_url("recommend") + "/api/v1/recommend/session"
    body: dict = {}

    def generated() -> bool:
        nonlocal body
        body = httpx.post(url, json={"items": list(ds.items.item_id), "count": 5}, timeout=30).json()
        return [i["item_id"] for i in body.get("items", [])] == [new_id]

    assert _wait(generated, 30), body
    assert body["served_by"] == "session" and body["items"][0]["is_new"]
    assert time.monotonic() - started < 60


def test_user_with_declared_interests_gets_a_vector(stack: Settings) -> None:
    user = f"cold-user-{uuid.uuid4().hex[:8]}"
    _post(stack, new_event(USER_UPSERTED, {"user_id": user, "interests": ["vegan skin care", "rose"]},
                           source="cold-start-test"))
    pool = make_pool(stack)
    users = UserRepo(pool)
    assert _wait(lambda: (u := users.get(user)) is not None and u.embedding is not None, 60)
    got = users.get(user)
    pool.close()
    assert got.preferences["interests"] == ["vegan skin care", "rose"]
    assert abs(float((got.embedding ** 2).sum()) - 1.0) < 1e-3  # a unit vector, like item vectors
