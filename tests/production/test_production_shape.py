"""A stack's rendered manifests, run here: `genrec deploy render --stack dev`, then each
workload started exactly as its manifest starts it (tests/production/shape.py says what is
supplied instead of a cluster), on a private local stack in production's shape (Redis as a
cluster). Then what a user does: events in → feature-update → a recommendation from the
model, the nightly job publishes, canary (its share of users gets it) → promote → the new
version answers → rollback.

Not run here (no server can be installed, or nothing can be reached): ClickHouse (the
analytics sink and the admin analytics), the LLM, the OpenTelemetry collector; see the
README's deploy section. The dev stack, not prod: prod's model repository asks Triton for GPU
instances (there is none here); otherwise the two render the same workloads, commands and
settings, with other sizes (tests/infra checks both renders).
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.devstack.process import port_is_free, wait_until
from genrec.events.bridge import Bridge
from genrec.events.contracts import INTERACTION
from genrec.serving.launch import serving_python
from genrec.stores import objects
from tests.helpers import free_port_base
from tests.production.shape import Container, container_env, find, load_objects, map_hosts

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAMESPACE = "genrec"
FUNCTIONS = ("event-capture", "feature-update", "recommend", "admin-api")  # the Knative Services run here
INGEST_KEY, ADMIN_TOKEN = "prod-shape-ingest-key", "prod-shape-admin-token"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("render-dev")
    result = CliRunner().invoke(app, ["deploy", "render", "--stack", "dev", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return load_objects(out)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]) -> Iterator[Settings]:
    """The stores and broker, on loopback, Redis a cluster as in production."""
    s = Settings(stack={"state_dir": tmp_path_factory.mktemp("prod-shape-stack"),
                        "port_base": free_port_base(taken=int(stack_env["GENREC_STACK__PORT_BASE"]))},
                 redis={"cluster": True},
                 # The workloads run as production, which refuses the local stack's development S3 key.
                 s3={"secret_access_key": uuid.uuid4().hex})
    try:
        devstack.up(s, ["s3", "kafka", "postgres", "redis", "milvus"], on_progress=lambda _m: None)
        yield s
    finally:
        devstack.down(s, on_progress=lambda _m: None)


def _free_ports(n: int, start: int) -> list[int]:
    ports = [p for p in range(start, start + 400) if port_is_free("127.0.0.1", p) and port_is_free("127.0.0.1", p + 1)
             and port_is_free("127.0.0.1", p + 2)]
    return ports[: 3 * n : 3]  # Triton takes three in a row


@dataclass
class Shape:
    objs: list[dict]
    local: Settings
    hosts: dict[str, str]  # cluster address -> this machine's
    secrets: dict[str, str]
    urls: dict[str, str]  # function -> local base URL
    logs: Path
    work: Path
    model_url: str  # the model server's address here

    def container(self, name: str, spec: dict) -> Container:
        env = map_hosts(container_env(spec, self.objs, self.secrets), self.hosts)
        return Container(name, list(spec.get("args", [])), env, self.logs)

    def run(self, name: str, spec: dict, *args: str) -> str:
        """A Job's (or the CronJob's) container to completion (`args`: an operator's override)."""
        c = self.container(name, spec)
        c.args = list(args) or c.args
        return c.run(self.work)


def _job_container(objs: list[dict], prefix: str) -> dict:
    (job,) = [o for o in objs if o["kind"] == "Job" and o["metadata"]["name"].startswith(prefix)]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


@pytest.fixture(scope="module")
def shape(rendered: list[dict], local: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    config = find(rendered, "ConfigMap", "genrec-config")["data"]
    prod = json.loads(config["GENREC_FUNCTIONS__URLS"])
    ports = _free_ports(len(FUNCTIONS) + 1, local.stack.port_base + 200)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in zip(FUNCTIONS, ports, strict=False)}
    triton_port = ports[len(FUNCTIONS)]

    def netloc(url: str) -> str:
        return urlparse(url if "://" in url else f"tcp://{url}").netloc

    hosts = {
        config["GENREC_KAFKA__BOOTSTRAP_SERVERS"]: local.kafka.bootstrap_servers,
        netloc(config["GENREC_S3__ENDPOINT_URL"]): netloc(local.s3.endpoint_url),
        netloc(config["GENREC_MILVUS__URI"]): netloc(local.milvus.uri),
        config["GENREC_MODEL_SERVER__URL"]: f"127.0.0.1:{triton_port}",
        **{netloc(prod[name]): netloc(url) for name, url in urls.items()},
    }
    secrets = {  # the values a cluster's Secrets hold, for this machine's servers
        "GENREC_POSTGRES__DSN": local.postgres.dsn.get_secret_value(),
        "GENREC_REDIS__URL": local.redis.url.get_secret_value(),
        "GENREC_S3__SECRET_ACCESS_KEY": local.s3.secret_access_key.get_secret_value(),
        "GENREC_AUTH__INGEST_API_KEYS": json.dumps({"default": INGEST_KEY}),
        "GENREC_AUTH__ADMIN_TOKENS": json.dumps({"admin": ADMIN_TOKEN}),
        "GENREC_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
    }
    work = tmp_path_factory.mktemp("prod-shape-work")
    sh = Shape(rendered, local, hosts, secrets, urls, work / "logs", work, f"127.0.0.1:{triton_port}")
    started: list[Container] = []
    try:
        # Setup Jobs first, as Pulumi waits for them: the schema, then the model repository.
        sh.run("db-migrate", _job_container(rendered, "db-migrate"))
        sh.run("model-repository", _job_container(rendered, "model-repository"))

        # The model server: KServe's storage initializer copies storageUri to /mnt/models, then
        # its Triton runtime serves that folder, in the predictor's image and environment.
        predictor = find(rendered, "InferenceService", "genrec-model")["spec"]["predictor"]["model"]
        mnt = objects.download_dir(predictor["storageUri"], work / "mnt-models", local)
        triton = sh.container("model-server", predictor)
        triton.env["PATH"] = f"{serving_python().parent}:{triton.runtime_env()['PATH']}"  # the serving image's
        started.append(triton.start(work, argv=[
            str(serving_python()), "-m", "genrec.serving.launch", "--model-repository", str(mnt),
            "--http-port", str(triton_port), "--workdir", str(work / "triton")]))

        services = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "Service"
                    and o["apiVersion"].startswith("serving.knative.dev")}
        for name in FUNCTIONS:
            (spec,) = services[name]["spec"]["template"]["spec"]["containers"]
            started.append(sh.container(name, spec).start(work, int(urlparse(urls[name]).port)))
        for c in started[1:]:
            ready = "/readyz" if c.args[0] == "service" else "/health/readiness"
            ok = wait_until(lambda c=c, ready=ready: httpx.get(urls[c.name] + ready, timeout=2).status_code == 200,
                            timeout_s=240)
            assert ok, f"{c.name} did not turn ready:\n{c.log_tail()}"
        ok = wait_until(lambda: httpx.get(f"http://127.0.0.1:{triton_port}/v2/health/ready", timeout=2).is_success,
                        timeout_s=300)
        assert ok, f"Triton did not turn ready:\n{triton.log_tail()}"
        # KafkaSources: the local bridge delivers each subscription to the function started here.
        bridge = Bridge(local, url_for=urls.get).start()
        try:
            yield sh
        finally:
            bridge.stop()
    finally:
        for c in reversed(started):
            c.stop()


def test_every_cluster_address_in_the_environment_is_mapped(shape: Shape) -> None:
    # What the started containers see holds no cluster address we failed to map, but those of
    # the workloads not run here: they reach exactly the servers the rendered config names.
    config = find(shape.objs, "ConfigMap", "genrec-config")["data"]
    left = {host for value in map_hosts(config, shape.hosts).values()
            for host in re.findall(r"[a-z0-9.-]+\.svc(?:\.cluster\.local)?", value)}
    not_run = {o["metadata"]["name"] for o in shape.objs if o["kind"] == "Service"
               and o["apiVersion"].startswith("serving.knative.dev")} - set(FUNCTIONS)
    collector = urlparse(config["OTEL_EXPORTER_OTLP_ENDPOINT"]).hostname  # no collector here
    assert left == {f"{name}.{NAMESPACE}.svc.cluster.local" for name in not_run} | {collector}, left


def _registry(s: Settings):
    from genrec.stores.model_registry import ModelRegistry
    from genrec.stores.postgres import make_pool

    return ModelRegistry(make_pool(s))


def test_events_to_model_recommendations_and_a_model_lifecycle(shape: Shape) -> None:
    from genrec.data import SynthConfig, generate_synthetic
    from genrec.pipelines.publish import publish_candidate
    from genrec.pipelines.seed import seed_postgres
    from genrec.recommend.experiment import CANARY_REFRESH_S
    from genrec.serving.artifact import Canary, fetch
    from genrec.serving.client import ModelClient
    from genrec.serving.repository import canary_model_name

    s = shape.local
    nightly = find(shape.objs, "CronJob", "nightly-pipeline")
    (cron,) = nightly["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]

    # History and catalogue in PostgreSQL (an operator's backfill), then the nightly job exactly
    # as the CronJob runs it: features with Spark from PostgreSQL, training, a published candidate.
    ds = generate_synthetic(SynthConfig(n_items=80, n_users=150, seed=7))
    seed_postgres(ds, s, source="prod-shape/seed")
    shape.run("nightly-pipeline", cron)
    registry = _registry(s)
    (v1,) = [m.version for m in registry.list(status="candidate")]

    # Promotion by an operator (a Job from the CronJob's template, other args): every model
    # server replica follows the production pointer.
    shape.run("promote", cron, "pipeline", "promote", v1)
    server = ModelClient(s, url=shape.model_url, timeout_s=30)

    def served() -> str:
        return str(server.status().get("version", ""))

    assert wait_until(lambda: served() == v1, timeout_s=240), server.status()

    # Events through event-capture reach feature-update through the broker, and the next
    # recommendation comes from the model, for that history. (A fresh user each time: a user's
    # list is cached for its unchanged history, up to redis.recommendation_ttl_s.)
    history = [str(i) for i in ds.items.item_id[:3]]

    def clicks_then_recommend(user: str | None = None) -> tuple[str, dict]:
        user = user or f"shape-{uuid.uuid4().hex[:8]}"
        events = [{"specversion": "1.0", "id": f"{user}-{k}", "source": "prod-shape", "type": INTERACTION,
                   "data": {"user_id": user, "item_id": item, "event_type": "click"}} for k, item in enumerate(history)]
        resp = httpx.post(shape.urls["event-capture"] + "/api/v1/events", json=events,
                          headers={"x-api-key": INGEST_KEY, "content-type": "application/cloudevents-batch+json"})
        assert resp.status_code == 202, resp.text
        assert wait_until(lambda: applied(user) == history, timeout_s=120)
        r = httpx.post(shape.urls["recommend"] + "/api/v1/recommend/generate", json={"user_id": user, "count": 10},
                       timeout=30)
        assert r.status_code == 200, r.text
        return user, r.json()

    def applied(user: str) -> list[str]:
        """The user's sequence in the hot state, as feature-update left it (the history in
        PostgreSQL is the analytics sink's, not run here)."""
        from genrec.stores.hot_state import HotState

        return HotState(s).recent_items(user)

    user, answer = clicks_then_recommend()
    assert answer["served_by"] == "model" and answer["algorithm_version"] == v1, answer
    assert answer["items"] and not {i["item_id"] for i in answer["items"]} & set(history)

    # The admin API reaches recommend at the address the rendered config gives it.
    shop = httpx.get(shape.urls["admin-api"] + "/api/v1/shop/recommendations", params={"user_id": user}, timeout=30)
    assert shop.status_code == 200 and shop.json()["items"], shop.text

    # A second candidate (v1's artifact published again under a new version), as canary, then
    # production: the new version answers; rollback: the old one answers again.
    v2 = f"{v1}-b"
    copy = shutil.copytree(fetch(registry.get(v1).artifact_uri, s), shape.work / "v2")  # publish stamps it
    publish_candidate(copy, v2, {}, registry, s, export=False)
    shape.run("canary", cron, "pipeline", "promote", v2, "--canary", "0.5")
    assert registry.get(v2).status == "canary" and served() == v1
    # The canary's weight is real traffic: its share of users (a stable hash) gets v2 from the
    # repository's canary model, the others production.
    canary_server = ModelClient(s, url=shape.model_url, model_name=canary_model_name(), timeout_s=30)
    assert wait_until(lambda: canary_server.status().get("version") == v2, timeout_s=240), canary_server.status()
    drawn = [f"shape-{uuid.uuid4().hex[:8]}" for _ in range(64)]
    in_canary = next(u for u in drawn if Canary("", v2, 0.5).takes(u))
    in_production = next(u for u in drawn if not Canary("", v2, 0.5).takes(u))
    time.sleep(CANARY_REFRESH_S)  # recommend re-reads the canary slot this often
    canary_list, production_list = clicks_then_recommend(in_canary)[1], clicks_then_recommend(in_production)[1]
    assert (canary_list["algorithm_version"], canary_list["variant"]) == (v2, "canary")
    assert (production_list["algorithm_version"], production_list["variant"]) == (v1, "production")
    for args, expected in ((("pipeline", "promote", v2), v2), (("pipeline", "rollback"), v1)):
        shape.run("operator", cron, *args)
        assert wait_until(lambda expected=expected: served() == expected, timeout_s=120), server.status()
        assert clicks_then_recommend()[1]["algorithm_version"] == expected
