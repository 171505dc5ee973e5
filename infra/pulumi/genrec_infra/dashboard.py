"""The genrec Grafana dashboard, built as data (shipped as a ConfigMap by observability.py).

Rows: HTTP traffic of every genrec service (from the `http_requests_total` counter and the
`http_request_duration_seconds` histogram each app serves on /metrics), Kafka consumer lag
(Strimzi's Kafka Exporter), and the model server (Triton's nv_* metrics).
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERVICE_FILTER = 'service=~"$service"'


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(pid: int, title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int,
           w: int = 12, h: int = 8) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
    }


def _row(pid: int, title: str, y: int) -> dict[str, Any]:
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}


def _latency(q: float) -> str:
    return (f"histogram_quantile({q}, sum by (le, service) "
            f"(rate(http_request_duration_seconds_bucket{{{SERVICE_FILTER}}}[$__rate_interval])))")


def build() -> dict[str, Any]:
    rate = "[$__rate_interval]"
    panels = [
        _row(1, "HTTP services", 0),
        _panel(2, "Requests per second", [
            (f"sum by (service) (rate(http_requests_total{{{SERVICE_FILTER}}}{rate}))", "{{service}}"),
        ], "reqps", 0, 1),
        _panel(3, "Errors per second (5xx)", [
            (f'sum by (service) (rate(http_requests_total{{{SERVICE_FILTER},status=~"5.."}}{rate}))', "{{service}}"),
        ], "reqps", 12, 1),
        _panel(4, "Latency p50 / p95 / p99", [
            (_latency(0.50), "p50 {{service}}"),
            (_latency(0.95), "p95 {{service}}"),
            (_latency(0.99), "p99 {{service}}"),
        ], "s", 0, 9, w=24),
        _row(5, "Kafka", 17),
        _panel(6, "Consumer lag by group and topic", [
            ("sum by (consumergroup, topic) (kafka_consumergroup_lag)", "{{consumergroup}} / {{topic}}"),
        ], "short", 0, 18),
        _panel(7, "Records in per topic", [
            (f"sum by (topic) (rate(kafka_topic_partition_current_offset{rate}))", "{{topic}}"),
        ], "ops", 12, 18),
        _panel(8, "Dead-letter records", [
            (f'sum by (topic) (increase(kafka_topic_partition_current_offset{{topic=~".*\\\\.dlq"}}{rate}))',
             "{{topic}}"),
        ], "short", 0, 26, w=24),
        _row(9, "Model server (Triton)", 34),
        _panel(10, "Inferences per second", [
            (f"sum by (model) (rate(nv_inference_request_success{rate}))", "ok {{model}}"),
            (f"sum by (model) (rate(nv_inference_request_failure{rate}))", "failed {{model}}"),
        ], "reqps", 0, 35),
        _panel(11, "GPU utilisation and memory", [
            ("avg by (gpu_uuid) (nv_gpu_utilization)", "util {{gpu_uuid}}"),
            ("avg by (gpu_uuid) (nv_gpu_memory_used_bytes / nv_gpu_memory_total_bytes)", "memory {{gpu_uuid}}"),
        ], "percentunit", 12, 35),
        _panel(12, "Queue and compute time per request", [
            (f"sum by (model) (rate(nv_inference_queue_duration_us{rate})) / "
             f"clamp_min(sum by (model) (rate(nv_inference_request_success{rate})), 1e-9) / 1e6", "queue {{model}}"),
            (f"sum by (model) (rate(nv_inference_compute_infer_duration_us{rate})) / "
             f"clamp_min(sum by (model) (rate(nv_inference_request_success{rate})), 1e-9) / 1e6", "compute {{model}}"),
        ], "s", 0, 43, w=24),
    ]
    return {
        "uid": "genrec-overview",
        "title": "genrec overview",
        "tags": ["genrec"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "service", "type": "query", "datasource": DATASOURCE, "label": "Service",
             "query": "label_values(http_requests_total, service)", "refresh": 2,
             "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }
