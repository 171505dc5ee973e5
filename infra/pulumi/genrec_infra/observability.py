"""Metrics and dashboards: a ServiceMonitor for every genrec service and the model server,
PodMonitors for the operator-managed stores, and the Grafana dashboard as a ConfigMap.

Knative only exposes its queue-proxy, not the app's port, through Services; so each
workload gets a small `<name>-metrics` Service selecting its pods on port 8080, where every
genrec app serves /metrics. The Helm charts (Redis, Milvus, MinIO) create their own
ServiceMonitors (enabled in their values).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apiextensions import CustomResource

from genrec.workloads import WORKLOADS
from genrec_infra import dashboard
from genrec_infra.config import StackConfig
from genrec_infra.k8s import custom, labels

MONITORING_API = "monitoring.coreos.com/v1"
TRITON_METRICS_PORT = 8002


def _metrics_service(name: str, namespace: str, selector: dict[str, str], port: int,
                     opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"metrics-{name}",
        metadata={"name": f"{name}-metrics", "namespace": namespace,
                  "labels": labels(name, "metrics", **{"genrec.dev/metrics": "true"})},
        spec={"type": "ClusterIP", "selector": selector,
              "ports": [{"name": "http-metrics", "port": port, "targetPort": port}]},
        opts=opts,
    )


def _service_monitor(name: str, cfg: StackConfig, namespace: str, opts: pulumi.ResourceOptions) -> CustomResource:
    return custom(f"servicemonitor-{name}", MONITORING_API, "ServiceMonitor",
                  {"name": name, "namespace": namespace, "labels": {**labels(name, "monitoring"),
                                                                   **cfg.observability.monitor_labels}},
                  {"selector": {"matchLabels": {"app.kubernetes.io/name": name, "genrec.dev/metrics": "true"}},
                   "namespaceSelector": {"matchNames": [namespace]},
                   "endpoints": [{"port": "http-metrics", "path": "/metrics",
                                  "interval": cfg.observability.scrape_interval}]},
                  opts)


def _pod_monitor(name: str, cfg: StackConfig, namespace: str, selector: dict[str, Any], port: str,
                 opts: pulumi.ResourceOptions) -> CustomResource:
    return custom(f"podmonitor-{name}", MONITORING_API, "PodMonitor",
                  {"name": name, "namespace": namespace, "labels": {**labels(name, "monitoring"),
                                                                   **cfg.observability.monitor_labels}},
                  {"selector": selector, "namespaceSelector": {"matchNames": [namespace]},
                   "podMetricsEndpoints": [{"port": port, "path": "/metrics",
                                            "interval": cfg.observability.scrape_interval}]},
                  opts)


def create(cfg: StackConfig, opts: pulumi.ResourceOptions) -> dict[str, pulumi.Resource]:
    ns = cfg.namespaces.app
    made: dict[str, pulumi.Resource] = {}
    for spec in WORKLOADS:
        made[f"svc/{spec.name}"] = _metrics_service(spec.name, ns, {"serving.knative.dev/service": spec.name},
                                                    spec.metrics_port, opts)
        made[f"sm/{spec.name}"] = _service_monitor(spec.name, cfg, ns, opts)
    model = cfg.model.name
    made[f"svc/{model}"] = _metrics_service(model, ns, {"serving.kserve.io/inferenceservice": model},
                                            TRITON_METRICS_PORT, opts)
    made[f"sm/{model}"] = _service_monitor(model, cfg, ns, opts)
    # Strimzi brokers, controllers and the Kafka Exporter (consumer lag) all carry strimzi.io/kind=Kafka.
    made["pm/kafka"] = _pod_monitor(
        "kafka", cfg, cfg.namespaces.kafka,
        {"matchLabels": {"strimzi.io/kind": "Kafka", "strimzi.io/cluster": cfg.kafka.cluster_name}},
        "tcp-prometheus", opts)
    made["pm/postgres"] = _pod_monitor(
        "postgres", cfg, cfg.namespaces.db, {"matchLabels": {"cnpg.io/cluster": cfg.postgres.cluster_name}},
        "metrics", opts)
    made["dashboard"] = k8s.core.v1.ConfigMap(
        "grafana-dashboard",
        metadata={"name": "genrec-dashboard", "namespace": cfg.observability.dashboard_namespace,
                  # picked up by the Grafana dashboard sidecar of kube-prometheus-stack
                  "labels": {**labels("genrec", "dashboard"), "grafana_dashboard": "1"}},
        data={"genrec-overview.json": json.dumps(dashboard.build(), indent=1)},
        opts=opts,
    )
    return made
