"""The namespaces: one for genrec's workloads, one per store (as the production URLs expect)."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from genrec_infra.config import StackConfig
from genrec_infra.k8s import PART_OF


def create(cfg: StackConfig) -> dict[str, k8s.core.v1.Namespace]:
    created: dict[str, k8s.core.v1.Namespace] = {}
    for ns in dict.fromkeys([cfg.namespaces.app, *cfg.namespaces.stores()]):
        labels = {"app.kubernetes.io/part-of": PART_OF}
        if ns == cfg.namespaces.app and cfg.istio_injection:
            # Knative and KServe traffic goes through the mesh; stores keep plain TCP.
            labels["istio-injection"] = "enabled"
        created[ns] = k8s.core.v1.Namespace(f"ns-{ns}", metadata={"name": ns, "labels": labels})
    return created
