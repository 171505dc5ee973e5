"""Every workload declares resource requests and health probes; the synchronous path never scales to zero."""

from __future__ import annotations

from genrec.config import PostgresSettings
from genrec.events.subscriptions import SUBSCRIPTIONS
from genrec.workloads import WORKLOADS, workload

FUNCTIONS = {"event-capture", "feature-update", "cold-start-embedding", "llm-enrichment", "recommend"}
KINDS = {w.name: w.kind for w in WORKLOADS}
# the synchronous path, and feature-update: a cold start would cost the click → next-list second
ALWAYS_WARM = {"recommend", "admin-api", "event-capture", "feature-update"}
POD_WORKLOADS = ("apps/v1:Deployment", "apps/v1:StatefulSet", "apps/v1:DaemonSet")


def _requests_ok(resources: dict) -> bool:
    requests = resources.get("requests", {})
    limits = resources.get("limits", {})
    return bool(requests.get("cpu")) and bool(requests.get("memory")) and bool(limits.get("memory"))


def _containers(svc: dict) -> list[dict]:
    return svc["spec"]["template"]["spec"]["containers"]


def test_all_services_deployed(run):
    services = run.knative_services()
    assert FUNCTIONS | {"admin-api"} <= set(services)
    assert {s.function for s in SUBSCRIPTIONS} <= set(services)


def test_knative_services_have_requests_and_probes(run):
    for name, svc in run.knative_services().items():
        for c in _containers(svc):
            assert _requests_ok(c["resources"]), name
            assert c["securityContext"]["runAsNonRoot"] is True
            if KINDS.get(name) == "grpc":
                continue  # test_grpc_api_is_served_over_h2c
            ready, live = c["readinessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["path"]
            # func-python answers its own health endpoints; an app under uvicorn answers /readyz, /healthz
            kind = KINDS.get(name, "service")
            want = ("/health/readiness", "/health/liveness") if kind == "function" else ("/readyz", "/healthz")
            assert (ready, live) == want, name


def test_grpc_api_is_served_over_h2c(run):
    # Knative routes gRPC only to a port named h2c; the probes ask the gRPC health service, and
    # Prometheus scrapes the second port the server opens for its metrics.
    (c,) = _containers(run.knative_services()["recommend-grpc"])
    assert c["ports"] == [{"name": "h2c", "containerPort": 8080}]
    assert c["args"] == ["grpc", "genrec.apps.recommend.rpc"]
    for probe in (c["readinessProbe"], c["livenessProbe"]):
        assert probe["grpc"] == {"port": 8080, "service": ""}
    assert {"name": "METRICS_PORT", "value": "9090"} in c["env"]
    (metrics,) = [s for s in run.of("kubernetes:core/v1:Service")
                  if s["inputs"]["metadata"]["name"] == "recommend-grpc-metrics"]
    assert metrics["inputs"]["spec"]["ports"][0]["targetPort"] == 9090


def test_each_workload_runs_its_own_image(run):
    # deploy/Dockerfile with WORKLOAD=NAME: genrec with only that workload's extra
    repo, tag = run.stack_config()["genrec:image"].rsplit(":", 1)
    for name, svc in run.knative_services().items():
        (c,) = _containers(svc)
        assert c["image"] == f"{repo}-{name}:{tag}", name


def test_plain_pod_workloads_have_requests_and_probes(run):
    for kind in POD_WORKLOADS:
        for r in run.of(kind):
            for c in r["inputs"]["spec"]["template"]["spec"]["containers"]:
                assert _requests_ok(c["resources"]) and c.get("readinessProbe") and c.get("livenessProbe"), r["name"]


def test_operator_workloads_have_requests(run):
    for pool in run.of("KafkaNodePool"):
        assert _requests_ok(pool["inputs"]["spec"]["resources"])
    for pg in run.of("postgresql.cnpg.io/v1:Cluster"):
        assert _requests_ok(pg["inputs"]["spec"]["resources"])  # probes: managed by CloudNativePG
    for chi in run.of("ClickHouseInstallation") + run.of("ClickHouseKeeperInstallation"):
        for tmpl in chi["inputs"]["spec"]["templates"]["podTemplates"]:
            for c in tmpl["spec"]["containers"]:
                assert _requests_ok(c["resources"])
    for release in run.of("helm.sh/v3:Release"):
        values = release["inputs"]["values"]
        found = [v for v in _find(values, "resources") if isinstance(v, dict) and v.get("requests")]
        assert found and all(_requests_ok(v) for v in found), release["inputs"]["name"]


def _find(value, key):
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _find(v, key)
    elif isinstance(value, list):
        for v in value:
            yield from _find(v, key)


def test_postgres_cluster_gets_the_event_write_settings(run):
    (pg,) = run.of("postgresql.cnpg.io/v1:Cluster")
    parameters = pg["inputs"]["spec"]["postgresql"]["parameters"]
    assert {k: parameters[k] for k in PostgresSettings().server_parameters} == PostgresSettings().server_parameters
    assert parameters["max_wal_size"] == "4GB" and parameters["checkpoint_timeout"] == "15min"


def test_min_scale(run):
    for name, svc in run.knative_services().items():
        annotations = svc["spec"]["template"]["metadata"]["annotations"]
        low = int(annotations["autoscaling.knative.dev/min-scale"])
        high = int(annotations["autoscaling.knative.dev/max-scale"])
        assert high >= max(low, 1), name
        if name in ALWAYS_WARM:
            assert low >= 1, f"{name} is on the synchronous path and must not scale to zero"
        assert annotations["autoscaling.knative.dev/metric"] == "concurrency"


def test_freshness_first_when_cores_are_short(run):
    # Realtime pods schedule first and may preempt; bulk pods (the analytics sink, LLM enrichment)
    # never preempt and are the first evicted. Every Knative Service names its workload's class.
    classes = {r["inputs"]["metadata"]["name"]: r["inputs"] for r in run.of("scheduling.k8s.io/v1:PriorityClass")}
    realtime, bulk = classes["genrec-realtime"], classes["genrec-bulk"]
    assert realtime["value"] > 0 > bulk["value"]
    assert bulk["preemptionPolicy"] == "Never" and not bulk.get("globalDefault")
    for name, svc in run.knative_services().items():
        assert svc["spec"]["template"]["spec"]["priorityClassName"] == f"genrec-{workload(name).priority}", name
    assert workload("feature-update").priority == "realtime"
    assert {w.name for w in WORKLOADS if w.priority == "bulk"} == {"analytics-sink", "llm-enrichment"}
    # the sink's KafkaSources hand it records unordered: its inserts do not depend on order
    sink_sources = [r["inputs"]["spec"] for r in run.of("sources.knative.dev/v1beta1:KafkaSource")
                    if r["inputs"]["spec"]["sink"]["ref"]["name"] == "analytics-sink"]
    assert sink_sources and all(spec["ordering"] == "unordered" for spec in sink_sources)


def test_nightly_pipeline(run):
    (job,) = [r["inputs"] for r in run.of("batch/v1:CronJob")]
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    (c,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["pipeline", "nightly"]
    # the job runs Spark: the pipeline image (pyspark + Java), not the functions' image
    repo, tag = run.stack_config()["genrec:image"].rsplit(":", 1)
    assert c["image"] == f"{repo}-pipeline:{tag}"
    assert _requests_ok(c["resources"])


def test_schema_migration_runs_before_the_services(run):
    (job,) = [r["inputs"] for r in run.of("batch/v1:Job") if r["name"] == "db-migrate"]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["db", "migrate"]
    assert _requests_ok(c["resources"])
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "genrec"
    sa = run.named("core/v1:ServiceAccount", "genrec")
    assert sa["automountServiceAccountToken"] is False
