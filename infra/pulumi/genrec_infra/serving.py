"""The model server: a KServe InferenceService on the Triton runtime, reading its model from MinIO.

The predictor runs the genrec serving image (deploy/Dockerfile.serving: Triton with genrec for
the python backend) on the repository `genrec serve repository --production` writes (a Job,
before the service starts) at genrec's production repository URI. That model follows the
production pointer in Redis, so `genrec pipeline promote` and `rollback` reach every replica
without a new revision; it reads the app's settings (Redis, S3) like every genrec pod.

KServe's storage initializer finds S3 credentials through the predictor's ServiceAccount:
the attached Secret carries the keys, its annotations the endpoint (MinIO, plain HTTP).
A GPU is requested only when the stack's model resources say so (prod: 1, dev: none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apiextensions import CustomResource

from genrec.config import Settings
from genrec.serving.launch import ALLOCATOR_ENV
from genrec.serving.repository import production_repository_uri
from genrec_infra import secrets
from genrec_infra.appconfig import AppConfig
from genrec_infra.config import StackConfig
from genrec_infra.k8s import custom, labels, svc_host

ISVC_API = "serving.kserve.io/v1beta1"
S3_SECRET = "genrec-model-s3"
SERVICE_ACCOUNT = "genrec-model"


def s3_annotations(cfg: StackConfig, s: Settings) -> dict[str, str]:
    return {
        "serving.kserve.io/s3-endpoint": f"{svc_host(cfg.minio.release, cfg.namespaces.storage)}:9000",
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-region": s.s3.region,
        "serving.kserve.io/s3-useanoncredential": "false",
    }


def predictor(cfg: StackConfig, s: Settings, app: AppConfig) -> dict[str, Any]:
    m = cfg.model
    model: dict[str, Any] = {
        "modelFormat": {"name": "triton"},
        "runtime": m.runtime,
        "protocolVersion": "v2",
        "storageUri": production_repository_uri(s),
        "image": cfg.serving_image,
        "envFrom": app.env_from(),
        "env": [{"name": "OTEL_SERVICE_NAME", "value": m.name},
                *({"name": k, "value": v} for k, v in ALLOCATOR_ENV.items()), *app.secret_env()],
        "resources": m.resources.to_k8s(),
    }
    spec: dict[str, Any] = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "minReplicas": max(1, m.min_replicas),  # never cold: recommend has a 500 ms budget
        "maxReplicas": m.max_replicas,
        "scaleMetric": "concurrency",
        "scaleTarget": m.scale_target,
        "model": model,
    }
    if m.canary_traffic_percent is not None:
        spec["canaryTrafficPercent"] = m.canary_traffic_percent
    if m.resources.gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return spec


@dataclass(frozen=True)
class Serving:
    inference_service: CustomResource
    service_account: k8s.core.v1.ServiceAccount


def create(cfg: StackConfig, s: Settings, creds: secrets.Credentials, app: AppConfig,
           opts: pulumi.ResourceOptions) -> Serving:
    ns = cfg.namespaces.app
    s3 = secrets.secret(S3_SECRET, ns, {"AWS_ACCESS_KEY_ID": "kserve", "AWS_SECRET_ACCESS_KEY": creds.minio_kserve},
                        annotations=s3_annotations(cfg, s), opts=opts)
    sa = k8s.core.v1.ServiceAccount(
        "genrec-model-sa",
        metadata={"name": SERVICE_ACCOUNT, "namespace": ns, "labels": labels(cfg.model.name, "model"),
                  "annotations": s3_annotations(cfg, s)},
        secrets=[{"name": S3_SECRET}],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[s3])),
    )
    isvc = custom(
        "inference-service", ISVC_API, "InferenceService",
        {"name": cfg.model.name, "namespace": ns, "labels": labels(cfg.model.name, "model"),
         # Triton's own metrics (GPU utilisation, queue time) next to KServe's.
         "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true"}},
        {"predictor": predictor(cfg, s, app)},
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[sa])),
    )
    return Serving(inference_service=isvc, service_account=sa)
