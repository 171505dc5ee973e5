"""The KServe InferenceService (Triton, S3 on MinIO, GPU in prod only) and the recommend route."""

from __future__ import annotations

import os
from unittest import mock

from genrec.config import Settings


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
    config_map = run.named("core/v1:ConfigMap", "genrec-config")["data"]
    secret = run.named("core/v1:Secret", "genrec-app-secrets")["stringData"]  # production refuses it without
    with mock.patch.dict(os.environ, {**config_map, **secret}, clear=True):
        s = Settings()
    assert model["storageUri"] == production_repository_uri(s)
    image = run.stack_config()["genrec:image"]
    repo, tag = image.rsplit(":", 1)
    assert model["image"] == f"{repo}-serving:{tag}"
    # the model follows the production pointer in Redis and fetches artifacts from MinIO
    assert model["envFrom"] == [{"configMapRef": {"name": "genrec-config"}}]
    assert "GENREC_REDIS__URL" in {e["name"] for e in model["env"]}
    assert s.model_server.instance_kind == ("gpu" if _gpu(model["resources"]) else "cpu")


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
