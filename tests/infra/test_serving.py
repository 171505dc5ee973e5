"""The KServe InferenceService (Triton, S3 on MinIO, GPU in prod only) and the recommend route."""

from __future__ import annotations

from genrec_infra.appconfig import production_settings
from genrec_infra.config import Resources, StackConfig, build


def _isvc(run) -> dict:
    (isvc,) = [r["inputs"] for r in run.of("serving.kserve.io/v1beta1:InferenceService")]
    return isvc


def _gpu(resources: dict) -> set[str]:
    return {k for part in ("requests", "limits") for k in resources.get(part, {}) if k == "nvidia.com/gpu"}


def test_gpu_in_prod_only(runs):
    prod = _isvc(runs["prod"])["spec"]["predictor"]["model"]["resources"]
    assert prod["limits"]["nvidia.com/gpu"] == "1"
    assert prod["requests"]["nvidia.com/gpu"] == "1"
    dev = _isvc(runs["dev"])["spec"]["predictor"]["model"]["resources"]
    assert not _gpu(dev)


def test_triton_predictor(run):
    predictor = _isvc(run)["spec"]["predictor"]
    assert predictor["model"]["modelFormat"]["name"] == "triton"
    assert predictor["model"]["storageUri"].startswith("s3://")
    assert predictor["minReplicas"] >= 1
    assert predictor["maxReplicas"] >= predictor["minReplicas"]
    assert predictor["scaleMetric"] == "concurrency"
    assert predictor["model"]["resources"]["requests"]["cpu"]


def test_predictor_serves_what_publish_writes_with_genrec_inside(run):
    # The stock Triton image lacks genrec (the python backend imports it), and a storageUri that
    # nothing writes leaves the predictor without a model: recommend would fall back forever.
    from genrec.serving.repository import production_repository_uri

    model = _isvc(run)["spec"]["predictor"]["model"]
    s = run.settings()
    assert model["storageUri"] == production_repository_uri(s)
    image = run.stack_config()["genrec:image"]
    repo, tag = image.rsplit(":", 1)
    assert model["image"] == f"{repo}-serving:{tag}"
    # the model follows the production pointer in Redis and fetches artifacts from MinIO
    assert model["envFrom"] == [{"configMapRef": {"name": "genrec-config"}}]
    assert "GENREC_REDIS__URL" in {e["name"] for e in model["env"]}
    assert s.model_server.instance_kind == ("gpu" if _gpu(model["resources"]) else "cpu")


def test_the_model_server_runs_one_single_thread_instance_per_requested_core(run, tmp_path):
    # Without a threads parameter torch takes one thread per core of the node, whatever the pod
    # requested: the replica would spin on its neighbours' cores (a second thread costs 1.6-1.8x
    # the CPU per request for no throughput).
    from genrec.serving.repository import write_production_models

    resources = _isvc(run)["spec"]["predictor"]["model"]["resources"]
    write_production_models(tmp_path, run.settings())
    cores = Resources(resources["requests"]["cpu"]).whole_cores()
    want = "count: 1 kind: KIND_GPU" if _gpu(resources) else f"count: {cores} kind: KIND_CPU"
    for model in ("genrec", "genrec_canary"):
        config = (tmp_path / model / "config.pbtxt").read_text()
        assert f"instance_group [ {{ {want} }} ]" in config, config
        assert 'key: "threads" value: { string_value: "1" }' in config


def test_a_cpu_model_server_gets_an_instance_per_requested_core():
    cpu_only = build(StackConfig, {"model": {"resources": {"cpu": "4", "memory": "16Gi", "gpu": 0}}})
    s = production_settings(cpu_only)
    assert (s.model_server.instance_kind, s.model_server.instances, s.model_server.threads) == ("cpu", 4, 1)


def test_the_repository_is_written_before_the_model_server_starts(run):
    job = run.named("batch/v1:Job", next(r["inputs"]["metadata"]["name"] for r in run.of("batch/v1:Job")
                                         if r["name"] == "model-repository"))
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["serve", "repository", "--production"]
    assert c["image"] == run.stack_config()["genrec:image"]


def test_s3_credentials_through_service_account(run):
    predictor = _isvc(run)["spec"]["predictor"]
    sa = run.named("core/v1:ServiceAccount", predictor["serviceAccountName"])
    (secret_ref,) = sa["secrets"]
    secret = run.named("core/v1:Secret", secret_ref["name"])
    annotations = secret["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"].startswith("minio.storage.")
    assert annotations["serving.kserve.io/s3-usehttps"] == "0"
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_recommend_virtual_service(runs):
    for stack, run in runs.items():
        vs = run.named("networking.istio.io/v1:VirtualService", "recommend")["spec"]
        header, weighted = vs["http"]
        (match,) = header["match"]
        assert match["headers"]["x-genrec-canary"] == {"exact": "true"}
        assert [d["headers"]["request"]["set"]["Knative-Serving-Tag"] for d in header["route"]] == ["canary"]
        weights = {d["headers"]["request"]["set"]["Knative-Serving-Tag"]: d["weight"] for d in weighted["route"]}
        assert sum(weights.values()) == 100, stack
        for rule in (header, weighted):
            assert rule["rewrite"]["authority"].startswith("recommend.genrec.svc")
    prod = runs["prod"].named("networking.istio.io/v1:VirtualService", "recommend")["spec"]
    weights = {d["headers"]["request"]["set"]["Knative-Serving-Tag"]: d["weight"] for d in prod["http"][1]["route"]}
    assert weights == {"stable": 95, "canary": 5}


def test_recommend_revisions_are_tagged(run):
    recommend = run.knative_services()["recommend"]
    revision = recommend["spec"]["template"]["metadata"]["name"]
    tags = {t["tag"]: t for t in recommend["spec"]["traffic"]}
    assert set(tags) == {"stable", "canary"}
    assert tags["canary"]["revisionName"] == revision
    assert sum(t["percent"] for t in tags.values()) == 100
    assert recommend["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"


def test_cold_start_embeds_as_many_batches_at_once_as_its_pods_request_cores():
    # A pod's request does not reach the process, which would otherwise start a thread per node core.
    assert production_settings(StackConfig()).functions.cold_start_workers == 1
    bigger = build(StackConfig, {"workloads": {"cold-start-embedding": {"resources": {"cpu": "3", "memory": "4Gi"}}}})
    assert production_settings(bigger).functions.cold_start_workers == 3
