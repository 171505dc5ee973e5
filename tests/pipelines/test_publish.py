"""Nightly flow on the real stack: PostgreSQL -> Spark -> train -> gate -> S3 + registry -> serving."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from genrec.config import Settings, get_settings
from genrec.data import SynthConfig, generate_synthetic
from genrec.data.schema import Catalog, InteractionDataset
from genrec.pipelines.cycle import CycleOptions, load_production, train_evaluate_publish
from genrec.pipelines.featureset import FeatureSet
from genrec.pipelines.nightly import NightlyOptions, run_nightly
from genrec.pipelines.seed import dataset_items, seed_postgres
from genrec.serving.artifact import ServingArtifact, resolve_current
from genrec.stores import objects
from genrec.stores.events_repo import EventRepo, UserEvent
from genrec.stores.model_registry import ModelRegistry
from genrec.stores.postgres import make_pool
from genrec.training import TrainConfig
from tests.pipelines.configs import GOOD_TRAIN, WEAK_TRAIN

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _planted(uid: str) -> InteractionDataset:
    """The planted-rule stream with ids unique to this run (the stack's catalogue is shared)."""
    ds = generate_synthetic(SynthConfig(n_items=40, n_users=150, seed=7, planted_rule=True))
    items, inter = ds.items.copy(), ds.interactions.copy()
    items["item_id"] = uid + "-" + items["item_id"]
    inter["item_id"] = uid + "-" + inter["item_id"]
    return InteractionDataset(Catalog(items), inter, name="planted")


@pytest.fixture(scope="module")
def flow(scratch: Settings, spark, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    uid = uuid.uuid4().hex[:6]
    source = f"pipeline-test/{uid}"
    ds = _planted(uid)
    seed_postgres(ds, scratch, source=source)
    first = ds.interactions.iloc[0]
    pool = make_pool(scratch)
    try:  # a redelivery re-stamped by its producer (PostgreSQL keeps one copy), and a user with one event
        stored = EventRepo(pool).insert_many([
            UserEvent("000000000000", source, str(first["user_id"]), str(first["item_id"]), "view",
                      ts=datetime(2030, 1, 1, tzinfo=UTC)),
            UserEvent("single", source, f"{uid}-lonely", str(first["item_id"]), "click",
                      ts=datetime(2020, 10, 1, tzinfo=UTC)),
        ])
        assert stored == 1
    finally:
        pool.close()
    console = Console(file=io.StringIO(), width=160)
    opts = NightlyOptions(
        work_dir=tmp_path_factory.mktemp("nightly"), features_out=f"s3://{scratch.s3.bucket}/test-features/{uid}",
        sources=[source], cycle=CycleOptions(train=TrainConfig.model_validate(GOOD_TRAIN)), promote=True,
        use_redis=False,
    )
    result = run_nightly(opts, scratch, spark=spark, console=console)
    return SimpleNamespace(s=scratch, uid=uid, ds=ds, result=result, output=console.file.getvalue(),
                           features=opts.features_out)


@pytest.fixture
def registry(scratch: Settings):
    pool = make_pool(scratch)
    yield ModelRegistry(pool)
    pool.close()


def _weak(flow: SimpleNamespace, registry: ModelRegistry, **kw):
    opts = CycleOptions(train=TrainConfig.model_validate(WEAK_TRAIN), export=False, **kw)
    with FeatureSet.open(flow.features, flow.s) as fs:
        return train_evaluate_publish(fs, registry, flow.s, opts)


def test_nightly_builds_features_from_postgres_publishes_and_promotes(flow, registry: ModelRegistry) -> None:
    r, s = flow.result, flow.s
    c = r.features["counts"]
    assert r.features["source"]["kind"] == "postgres" and r.features["source"]["exported_events"] == 1492
    assert (c["duplicate_events"], c["single_event_users"], c["users_in_split"], c["items"]) == (0, 1, 150, 40)
    assert objects.exists(f"{flow.features}/manifest.json", s)

    cycle = r.cycle
    assert cycle.decision.publish and cycle.production is None and cycle.published is not None
    assert cycle.candidate["ndcg@10"] > 0.5, cycle.candidate
    prod = registry.production()
    assert prod.version == cycle.version and prod.metrics["test"]["ndcg@10"] == cycle.candidate["ndcg@10"]
    assert prod.artifact_uri == f"s3://{s.s3.bucket}/models/{cycle.version}"
    assert prod.metrics["features"]["hashes"]["sequences"] == r.features["hashes"]["sequences"]
    # Serving follows: the pointer names the artifact, which reports the registry version.
    assert resolve_current(s) == prod.artifact_uri
    assert ServingArtifact.open(prod.artifact_uri, s).version == cycle.version
    if prod.serving_uri:  # the serving exporter is installed: the Triton repository is next to it
        assert any(u.endswith("config.pbtxt") for u in objects.list_uris(prod.serving_uri, s))
    # The production model server's repository (the InferenceService's storageUri) is written too,
    # and follows the pointer rather than pinning this version.
    from genrec.serving.repository import production_repository_uri

    config = objects.get_bytes(f"{production_repository_uri(s)}/genrec/config.pbtxt", s).decode()
    assert 'key: "artifact" value: { string_value: "current" }' in config
    assert objects.exists(f"{production_repository_uri(s)}/genrec/1/model.py", s)
    assert f"nightly run {r.run_id}" in flow.output and "no production model" in flow.output


def test_worse_candidate_is_not_published(flow, registry: ModelRegistry) -> None:
    before = [(m.version, m.status) for m in registry.list()]
    weak = _weak(flow, registry)
    assert not weak.decision.publish and weak.published is None
    assert weak.production_version == flow.result.cycle.version
    assert weak.candidate["ndcg@10"] < weak.production["ndcg@10"]
    # Both were scored on the same users: production's number is reproducible on this split.
    assert weak.production["users"] == weak.candidate["users"] == 150
    assert [(m.version, m.status) for m in registry.list()] == before


@pytest.fixture
def cli_env(flow, monkeypatch: pytest.MonkeyPatch):
    """The CLI resolves settings from the environment: point it at this module's scratch stores."""
    monkeypatch.setenv("GENREC_POSTGRES__DSN", flow.s.postgres.dsn.get_secret_value())
    monkeypatch.setenv("GENREC_MODEL__ARTIFACTS_DIR", str(flow.s.model.artifacts_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_promote_canary_production_and_rollback_from_the_cli(flow, registry: ModelRegistry, cli_env) -> None:
    from genrec.cli import app
    from genrec.serving.artifact import read_canary, set_canary
    from genrec.stores.hot_state import redis_client

    good = flow.result.cycle.version
    weak = _weak(flow, registry, force=True)  # a manual override publishes it anyway
    assert weak.published is not None and registry.get(weak.version).status == "candidate"
    runner = CliRunner()

    out = runner.invoke(app, ["pipeline", "promote", weak.version, "--canary", "0.05"])
    assert out.exit_code == 0, out.output
    assert registry.get(weak.version).status == "canary"
    assert registry.traffic_split() == pytest.approx({weak.version: 0.05, good: 0.95})
    assert resolve_current(flow.s) == registry.get(good).artifact_uri  # a canary does not move the pointer
    # ... but fills the model servers' canary slot, with its weight (recommend's share of users)
    rc = redis_client(flow.s)
    try:
        canary = read_canary(rc)
        assert (canary.version, canary.uri, canary.weight) == (weak.version, weak.published.artifact_uri, 0.05)
    finally:
        set_canary(rc, None)  # the session's recommend shares this Redis

    out = runner.invoke(app, ["pipeline", "promote", weak.version, "--no-redis"])
    assert out.exit_code == 0, out.output
    assert registry.production().version == weak.version and registry.get(good).status == "retired"
    assert resolve_current(flow.s) == weak.published.artifact_uri

    out = runner.invoke(app, ["pipeline", "rollback", "--no-redis"])
    assert out.exit_code == 0, out.output
    assert registry.production().version == good
    assert resolve_current(flow.s) == registry.get(good).artifact_uri
    out = runner.invoke(app, ["pipeline", "list"])
    assert good in out.output and weak.version in out.output
    assert runner.invoke(app, ["pipeline", "promote", "no-such-version"]).exit_code == 1


def test_backfill_embeds_the_catalogue_and_reports_code_changes(flow, registry: ModelRegistry,
                                                                tmp_path: Path) -> None:
    from genrec.pipelines.backfill import run_backfill
    from genrec.stores.catalog_repo import CatalogRepo
    from genrec.stores.milvus import ItemVectorIndex

    s = flow.s
    _, prod = load_production(registry, s)
    cfg = TrainConfig.model_validate({**GOOD_TRAIN, "tokenizer": {**GOOD_TRAIN["tokenizer"], "steps": 50}})
    with FeatureSet.open(flow.features, s) as fs:
        result = run_backfill(fs, s, production=prod, retrain_tokenizer=True, train_cfg=cfg, out_dir=tmp_path)
    assert (result.items, result.postgres_updated, result.milvus_upserted) == (40, 40, 40)
    assert result.tokenizer == "retrained" and (tmp_path / "tokenizer.pt").exists()
    changes = result.code_changes
    assert changes["compared"] == 40 and changes["new"] == changes["removed"] == 0
    assert 0 <= changes["prefix_changed"] <= changes["changed"] <= 40
    some = f"{flow.uid}-I000003"
    pool = make_pool(s)
    try:
        item = CatalogRepo(pool).get(some)
    finally:
        pool.close()
    assert item.embedding is not None and item.embedding.shape == (384,)
    assert item.semantic_ids == prod.code_table.item_codes[prod.item_index.index(some)].tolist()
    index = ItemVectorIndex(s)
    try:
        assert index.count() == 40 and index.get([some])[0].semantic_ids == tuple(item.semantic_ids[:3])
    finally:
        index.close()


def _poll(read, expected: str, timeout_s: float) -> str:
    deadline, got = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        got = read()
        if got == expected:
            break
        time.sleep(0.5)
    return got


def test_model_server_and_recommend_api_follow_promotion_and_rollback(flow, registry: ModelRegistry,
                                                                      stack: Settings) -> None:
    from genrec.pipelines.publish import promote, rollback
    from genrec.serving import keys
    from genrec.serving.client import ModelClient
    from genrec.stores.catalog_repo import CatalogRepo
    from genrec.stores.hot_state import HotState, redis_client

    # The stack's own pointer, Redis and catalogue: what its model server and recommend API use.
    s = flow.s.model_copy(deep=True)
    s.model.artifacts_dir = stack.model.artifacts_dir
    pool = make_pool(stack)
    try:
        CatalogRepo(pool).upsert_many(dataset_items(flow.ds))
    finally:
        pool.close()
    rc = redis_client(stack)
    pointer = Path(stack.model.artifacts_dir) / "CURRENT"
    saved = (rc.get(keys.CURRENT), pointer.read_text() if pointer.exists() else None)
    history = [str(i) for i in flow.ds.interactions["item_id"].iloc[:4]]
    server = ModelClient(stack)

    def api_version() -> str:
        user = f"{flow.uid}-u-{uuid.uuid4().hex[:6]}"  # a fresh user: nothing cached
        HotState(stack).append_recent_items(user, history)
        resp = httpx.post(stack.function_url("recommend") + "/api/v1/recommend/generate",
                          json={"user_id": user, "count": 5}, timeout=30)
        return resp.json().get("algorithm_version", "")

    good = registry.production().version
    other = next(m.version for m in registry.list() if m.version != good)  # the forced one, retired now
    stale: list[tuple[str, str]] = []
    try:
        for action, expected in ((lambda: promote(good, registry, s), good),
                                 (lambda: promote(other, registry, s), other),
                                 (lambda: rollback(registry, s), good)):
            action()
            assert registry.production().version == expected
            assert _poll(lambda: server.status().get("version", ""), expected, 90) == expected
            got = _poll(api_version, expected, 20)
            if got != expected:
                stale.append((expected, got))
    finally:
        if saved[0] is None:
            rc.delete(keys.CURRENT)
        else:
            rc.set(keys.CURRENT, saved[0])
        if saved[1] is None:
            pointer.unlink(missing_ok=True)
        else:
            pointer.write_text(saved[1])
    assert not stale, f"recommend API algorithm_version did not follow the served model: {stale}"
