"""User profiles and the model version registry on real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from psycopg_pool import ConnectionPool

from genrec.config import Settings
from genrec.stores.model_registry import ModelRegistry, RegistryError
from genrec.stores.postgres import connect, make_pool, migrate
from genrec.stores.users_repo import User, UserRepo

pytestmark = pytest.mark.stack


def test_user_upsert_merges_and_keeps_embedding(pool: ConnectionPool, uid: str, stack: Settings) -> None:
    repo = UserRepo(pool)
    emb = np.linspace(-1, 1, stack.postgres.embedding_dim, dtype=np.float32)
    repo.upsert(User(f"{uid}-u", profile={"age": 30}, preferences={"lang": "en"}, embedding=emb))
    repo.upsert(User(f"{uid}-u", profile={"city": "Oslo"}))
    got = repo.get(f"{uid}-u")
    assert got.profile == {"age": 30, "city": "Oslo"} and got.preferences == {"lang": "en"}
    np.testing.assert_allclose(got.embedding, emb)
    repo.upsert(User(f"{uid}-u", profile={"age": 31}), merge=False)
    assert repo.get(f"{uid}-u").profile == {"age": 31}
    assert repo.get(f"{uid}-missing") is None


def test_touch_never_moves_activity_backwards(pool: ConnectionPool, uid: str) -> None:
    repo = UserRepo(pool)
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    repo.touch(f"{uid}-u", t)
    repo.touch(f"{uid}-u", t - timedelta(days=1))
    assert repo.get(f"{uid}-u").last_active_at == t
    repo.touch(f"{uid}-u", t + timedelta(seconds=1))
    assert repo.get(f"{uid}-u").last_active_at == t + timedelta(seconds=1)


@pytest.fixture
def registry(stack: Settings, uid: str):
    """A registry inside one transaction that is rolled back: the shared table stays clean and
    this test owns the single production slot."""
    with connect(stack) as conn:
        conn.execute("DELETE FROM model_versions")  # visible only inside this transaction
        yield ModelRegistry(conn)
        conn.rollback()


def test_registry_lifecycle_promote_and_rollback(registry: ModelRegistry, uid: str) -> None:
    v1, v2, v3 = (f"{uid}-v{i}" for i in (1, 2, 3))
    assert registry.register(v1, "s3://genrec/models/v1", metrics={"ndcg@10": 0.31}).status == "candidate"
    registry.register(v2, "s3://genrec/models/v2")
    registry.register(v3, "s3://genrec/models/v3")
    with pytest.raises(RegistryError):
        registry.rollback()  # nothing in production yet

    assert registry.promote(v1).status == "production"
    canary = registry.set_status(v2, "canary", traffic_weight=0.1)
    assert canary.status == "canary" and canary.traffic_weight == pytest.approx(0.1)
    assert registry.traffic_split() == pytest.approx({v2: 0.1, v1: 0.9})
    with pytest.raises(RegistryError):
        registry.set_status(v3, "canary", traffic_weight=0.95)  # canaries would exceed 100 %
    registry.set_traffic(v2, 0.25)
    assert registry.traffic_split() == pytest.approx({v2: 0.25, v1: 0.75})

    # promote: the old production version is retired in the same transaction
    assert registry.promote(v2).status == "production"
    assert {m.version: m.status for m in registry.list()} == {v1: "retired", v2: "production", v3: "candidate"}
    assert registry.traffic_split() == {v2: 1.0}
    registry.promote(v3)
    assert [m.version for m in registry.list(status="production")] == [v3]

    # rollback walks back through promotion history: v3 -> v2 -> v1
    assert registry.rollback().version == v2
    assert registry.get(v3).status == "retired"
    assert registry.rollback().version == v1
    with pytest.raises(RegistryError):
        registry.rollback()
    assert registry.production().version == v1

    with pytest.raises(RegistryError):
        registry.promote(f"{uid}-nope")
    with pytest.raises(RegistryError):
        registry.set_status(v1, "shipped")


def test_concurrent_promotions_leave_exactly_one_production(empty_db: Settings, uid: str) -> None:
    migrate(empty_db)  # a private database: promoting here cannot retire another test's model
    pool = make_pool(empty_db)
    registry = ModelRegistry(pool)
    versions = [f"{uid}-c{i}" for i in range(6)]
    for v in versions:
        registry.register(v, f"s3://genrec/models/{v}")
    errors: list[Exception] = []

    def promote(v: str) -> None:
        try:
            registry.promote(v)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(registry.list(status="production")) == 1
        assert len(registry.list(status="retired")) == len(versions) - 1
    finally:
        pool.close()
