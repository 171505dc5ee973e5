"""Metrics reach Prometheus from every genrec service and the model server; the dashboard covers the SLOs."""

from __future__ import annotations

import json


def test_service_monitor_per_service(run):
    monitors = {r["inputs"]["metadata"]["name"]: r["inputs"] for r in run.of("monitoring.coreos.com/v1:ServiceMonitor")}
    metrics_services = {r["inputs"]["metadata"]["name"]: r["inputs"] for r in run.of("core/v1:Service")}
    targets = set(run.knative_services()) | {"genrec-model"}
    assert targets <= set(monitors)
    for name in targets:
        (endpoint,) = monitors[name]["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        svc = metrics_services[f"{name}-metrics"]
        assert svc["metadata"]["labels"]["app.kubernetes.io/name"] == name
        assert monitors[name]["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert svc["spec"]["ports"][0]["name"] == endpoint["port"]
    for name in run.knative_services():
        assert metrics_services[f"{name}-metrics"]["spec"]["selector"] == {"serving.knative.dev/service": name}


def test_dashboard(run):
    cm = run.named("core/v1:ConfigMap", "genrec-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(cm["data"]["genrec-overview.json"])
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le, service) (rate(http_request_duration_seconds_bucket" in exprs
    assert "http_requests_total" in exprs
    assert "kafka_consumergroup_lag" in exprs
    assert "nv_inference_request_success" in exprs and "nv_gpu_utilization" in exprs


def test_traces_endpoint_configured(run):
    env = run.named("core/v1:ConfigMap", "genrec-config")["data"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == run.stack_config().get(
        "genrec:observability", {}).get("otlpEndpoint", "http://otel-collector.observability.svc:4317")
