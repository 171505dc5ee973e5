"""genrec's workloads as Knative Services: the five functions, the admin API and the analytics sink.

Each runs its own image (deploy/Dockerfile built with WORKLOAD=NAME: genrec with only that
workload's extra, `genrec-NAME`, unless `genrec:workloads` names one); its entrypoint takes
`function NAME` (func-python, health on /health/*) or `service MODULE:FACTORY` (uvicorn,
health on /healthz and /readyz). Settings arrive as GENREC_* variables from the ConfigMap,
secrets through secretKeyRef.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from genrec.events.subscriptions import SUBSCRIPTIONS
from genrec.workloads import HTTP_PORT as PORT
from genrec.workloads import WORKLOADS
from genrec.workloads import Workload as Declared
from genrec_infra.appconfig import SERVICE_ACCOUNT, AppConfig
from genrec_infra.config import StackConfig, Workload
from genrec_infra.k8s import custom, digest, grpc_probe, http_probe, labels
from genrec_infra.priorities import class_name

KNATIVE_API = "serving.knative.dev/v1"


def check_catalogue(cfg: StackConfig) -> None:
    names = {s.name for s in WORKLOADS}
    missing = {sub.function for sub in SUBSCRIPTIONS} - names
    if missing:
        raise ValueError(f"subscriptions name workloads that are not deployed: {sorted(missing)}")
    unconfigured = names - set(cfg.workloads)
    if unconfigured:
        raise ValueError(f"no workload config for {sorted(unconfigured)}")


def container(spec: Declared, w: Workload, cfg: StackConfig, app: AppConfig) -> dict[str, Any]:
    ready, live = spec.health
    # A gRPC API: Knative routes HTTP/2 cleartext to a port named h2c; its probes ask the gRPC health service.
    probe = (lambda _path, **kw: grpc_probe(PORT, **kw)) if spec.grpc else http_probe
    return {
        "name": "app",
        "image": cfg.image_for(spec.name),
        "imagePullPolicy": cfg.image_pull_policy,
        "args": spec.args,
        "ports": [{"name": "h2c" if spec.grpc else "http1", "containerPort": PORT}],
        "envFrom": app.env_from(),
        "env": [{"name": "OTEL_SERVICE_NAME", "value": spec.name}, *app.secret_env(),
                *([{"name": "METRICS_PORT", "value": str(spec.metrics_port)}] if spec.grpc else [])],
        "resources": w.resources.to_k8s(),
        "readinessProbe": probe(ready, period_s=5),
        # Generous: a function loads models at start; restarting it mid-load helps no one.
        "livenessProbe": probe(live, initial_delay_s=30, period_s=10, failure_threshold=6),
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }


def template(spec: Declared, w: Workload, cfg: StackConfig, app: AppConfig) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": labels(spec.name, spec.kind),
            "annotations": {
                "autoscaling.knative.dev/min-scale": str(w.min_scale),
                "autoscaling.knative.dev/max-scale": str(w.max_scale),
                "autoscaling.knative.dev/metric": "concurrency",
                "autoscaling.knative.dev/target": str(w.target),
                # Knative does not watch ConfigMaps: a new hash makes a new revision.
                "genrec.dev/config-hash": app.config_hash,
            },
        },
        "spec": {
            "containerConcurrency": w.container_concurrency,
            "timeoutSeconds": w.timeout_s,
            "serviceAccountName": SERVICE_ACCOUNT,
            # Knative needs the `kubernetes.podspec-priorityclassname` feature enabled (infra/README.md).
            "priorityClassName": class_name(spec.priority),
            "containers": [container(spec, w, cfg, app)],
        },
    }


def recommend_traffic(revision: str, stable: str | None) -> list[dict[str, Any]]:
    """Tags the Istio VirtualService routes to (Knative-Serving-Tag); weights live in the VirtualService.

    The Knative route itself sends everything to the stable revision; `canary` is the newest one.
    """
    return [
        {"tag": "stable", "revisionName": stable or revision, "percent": 100},
        {"tag": "canary", "revisionName": revision, "percent": 0},
    ]


@dataclass(frozen=True)
class Functions:
    services: dict[str, CustomResource]
    recommend_revision: str


def create(cfg: StackConfig, app: AppConfig, priority_classes: list[pulumi.Resource],
           opts: pulumi.ResourceOptions) -> Functions:
    check_catalogue(cfg)
    ns = cfg.namespaces.app
    svc_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
        depends_on=[app.service_account, app.config_map, app.secret, *priority_classes]))
    services: dict[str, CustomResource] = {}
    recommend_revision = ""
    for spec in WORKLOADS:
        w = cfg.workloads[spec.name]
        tmpl = template(spec, w, cfg, app)
        body: dict[str, Any] = {"template": tmpl}
        if spec.name == "recommend":
            # A revision named after its template: every change gets a new, predictable name,
            # which the stack config can pin as `recommend.stableRevision`.
            recommend_revision = f"recommend-{digest(tmpl, 8)}"
            tmpl["metadata"]["name"] = recommend_revision
            body["traffic"] = recommend_traffic(recommend_revision, cfg.recommend.stable_revision)
        meta_labels = labels(spec.name, spec.kind)
        if not spec.public:
            meta_labels["networking.knative.dev/visibility"] = "cluster-local"
        services[spec.name] = custom(f"ksvc-{spec.name}", KNATIVE_API, "Service",
                                     {"name": spec.name, "namespace": ns, "labels": meta_labels}, body, svc_opts)
    return Functions(services=services, recommend_revision=recommend_revision)
