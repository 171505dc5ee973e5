"""Small Kubernetes building blocks shared by the components: labels, probes, CRs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

PART_OF = "genrec"


def labels(name: str, component: str, **extra: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        **extra,
    }


def http_probe(path: str, *, initial_delay_s: int = 0, period_s: int = 10, failure_threshold: int = 3,
               port: int | None = None) -> dict[str, Any]:
    # Knative fills in the container port itself and rejects any other port, so it is optional.
    get: dict[str, Any] = {"path": path}
    if port is not None:
        get["port"] = port
    return {
        "httpGet": get,
        "initialDelaySeconds": initial_delay_s,
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failure_threshold,
    }


def grpc_probe(port: int, *, initial_delay_s: int = 0, period_s: int = 10, failure_threshold: int = 3
               ) -> dict[str, Any]:
    """Kubernetes' gRPC probe: the standard health service's answer for the whole server ("")."""
    return {
        "grpc": {"port": port, "service": ""},
        "initialDelaySeconds": initial_delay_s,
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failure_threshold,
    }


def digest(value: Any, length: int = 10) -> str:
    """A short stable hash of plain data (used to name revisions and roll pods on config change)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_name(text: str) -> str:
    """A Kubernetes object name from a topic or key ('user_events.dlq' → 'user-events-dlq')."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def custom(resource_name: str, api_version: str, kind: str, metadata: dict[str, Any], spec: Any,
           opts: pulumi.ResourceOptions | None = None, **fields: Any) -> k8s.apiextensions.CustomResource:
    """A CustomResource with an explicit object name (operators and other resources refer to it)."""
    return k8s.apiextensions.CustomResource(
        resource_name, api_version=api_version, kind=kind, metadata=metadata, spec=spec, opts=opts, **fields,
    )


def svc_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"
