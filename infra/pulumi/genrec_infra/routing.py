"""Public route of the recommend API: an Istio VirtualService with a header override and a weighted canary.

recommend is a cluster-local Knative Service whose route tags two revisions, `stable` and
`canary` (functions.recommend_traffic). This VirtualService, bound to the public gateway,
forwards to Knative's local gateway with the service's cluster-local authority and picks the
revision with Knative's `Knative-Serving-Tag` header: `x-genrec-canary: true` always gets the
canary, everyone else is split stable/canary by weight (95/5 by default). Needs Knative's
`tag-header-based-routing` feature enabled (see README).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from genrec_infra.config import StackConfig
from genrec_infra.k8s import custom, labels, svc_host

VS_API = "networking.istio.io/v1"
TAG_HEADER = "Knative-Serving-Tag"


def _to(cfg: StackConfig, tag: str, weight: int | None = None) -> dict[str, Any]:
    dest: dict[str, Any] = {
        "destination": {"host": cfg.recommend.local_gateway, "port": {"number": 80}},
        "headers": {"request": {"set": {TAG_HEADER: tag}}},
    }
    if weight is not None:
        dest["weight"] = weight
    return dest


def spec(cfg: StackConfig) -> dict[str, Any]:
    r = cfg.recommend
    if not 0 <= r.canary_weight <= 100:
        raise ValueError("recommend.canaryWeight must be within 0..100")
    authority = {"authority": svc_host("recommend", cfg.namespaces.app)}
    return {
        "hosts": [r.host],
        "gateways": [r.gateway],
        "http": [
            {
                "name": "canary-by-header",
                "match": [{"headers": {r.canary_header: {"exact": "true"}}}],
                "rewrite": authority,
                "route": [_to(cfg, "canary")],
            },
            {
                "name": "weighted",
                "rewrite": authority,
                "route": [_to(cfg, "stable", 100 - r.canary_weight), _to(cfg, "canary", r.canary_weight)],
                "timeout": "2s",
                "retries": {"attempts": 2, "perTryTimeout": "800ms", "retryOn": "connect-failure,refused-stream,503"},
            },
        ],
    }


def create(cfg: StackConfig, recommend: pulumi.Resource, opts: pulumi.ResourceOptions) -> CustomResource:
    return custom("recommend-virtualservice", VS_API, "VirtualService",
                  {"name": "recommend", "namespace": cfg.namespaces.app, "labels": labels("recommend", "route")},
                  spec(cfg), pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[recommend])))
