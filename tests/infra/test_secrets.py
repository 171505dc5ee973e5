"""No credential appears in plain text outside a Kubernetes Secret."""

from __future__ import annotations

import json
import re
from typing import Any

SECRET_TYPES = {"kubernetes:core/v1:Secret"}
# A key that would carry a credential by value (references such as existingSecret* or
# k8s_secret_password name a Secret instead and are fine).
SUSPICIOUS_KEY = re.compile(r"(^|[/_.-])(password|passwd|secret_?key|secret_?access_?key|api_?key|token)$", re.I)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)


def _plain_resources(run) -> list[dict]:
    return [r for r in run.resources
            if r["type"] not in SECRET_TYPES and not r["type"].startswith("random:")]


def _walk(value: Any, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
            yield f"{path}.{k}", k, v
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def test_secrets_were_generated(run):
    assert len(run.generated_secrets) >= 8
    secret_data = json.dumps([r["inputs"] for r in run.of("core/v1:Secret")])
    for value in run.generated_secrets + run.config_secrets:
        assert value in secret_data  # each one is delivered, through a Secret


def test_no_secret_value_outside_secrets(run):
    for r in _plain_resources(run):
        blob = json.dumps(r["inputs"])
        for value in run.generated_secrets + run.config_secrets:
            assert value not in blob, f"a secret value appears in {r['type']} {r['name']}"


def test_no_credential_shaped_values(run):
    for r in _plain_resources(run):
        for path, key, value in _walk(r["inputs"]):
            if isinstance(value, str) and URL_WITH_PASSWORD.search(value):
                raise AssertionError(f"URL with credentials at {r['name']}{path}")
            if SUSPICIOUS_KEY.search(str(key)) and "k8s_secret" not in str(key) and isinstance(value, str) and value:
                raise AssertionError(f"credential-like key {key!r} with a value at {r['name']}{path}")


def test_env_secrets_come_from_secret_refs(run):
    for name, svc in run.knative_services().items():
        for container in svc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if any(w in env["name"] for w in ("DSN", "PASSWORD", "SECRET", "TOKEN", "API_KEY", "REDIS__URL",
                                                  "CLICKHOUSE__URL")):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], f"{name}: {env['name']}"


def test_secret_refs_resolve(run):
    secrets = {(r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"]): r["inputs"]
               for r in run.of("core/v1:Secret")}
    for name, svc in run.knative_services().items():
        ns = svc["metadata"]["namespace"]
        for container in svc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[(ns, ref["name"])]["stringData"], f"{name}: {ref}"
