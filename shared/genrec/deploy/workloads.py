"""The containers of rendered workloads and the environment each one would see.

Workloads: Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Knative
Services/Configurations and KServe InferenceServices (predictor/transformer/explainer pod
specs, and their model container: `predictor.model`, `predictor.triton`, ...).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from genrec.deploy import kserve_schema
from genrec.deploy.manifests import Manifest

FieldPath = list[str | int]

_POD_PATHS: dict[str, list[FieldPath]] = {
    "Pod": [["spec"]],
    "Deployment": [["spec", "template", "spec"]],
    "StatefulSet": [["spec", "template", "spec"]],
    "DaemonSet": [["spec", "template", "spec"]],
    "ReplicaSet": [["spec", "template", "spec"]],
    "Job": [["spec", "template", "spec"]],
    "CronJob": [["spec", "jobTemplate", "spec", "template", "spec"]],
}
_KNATIVE = {("serving.knative.dev", "Service"), ("serving.knative.dev", "Configuration")}
_ISVC = ("serving.kserve.io", "InferenceService")


@lru_cache(maxsize=1)
def isvc_model_keys() -> frozenset[str]:
    """Predictor fields that are a model container (they carry a storageUri), per KServe's schema."""
    defs = kserve_schema.load()["$defs"]
    keys = set()
    for key, prop in defs["V1beta1PredictorSpec"]["properties"].items():
        ref = prop.get("$ref", "")
        if ref.startswith("#/$defs/") and "storageUri" in defs[ref.split("/")[-1]].get("properties", {}):
            keys.add(key)
    return frozenset(keys)


def _get(obj: Any, path: FieldPath) -> Any:
    for key in path:
        if isinstance(key, int):
            obj = obj[key] if isinstance(obj, list) and key < len(obj) else None
        else:
            obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def pod_specs(m: Manifest) -> list[tuple[FieldPath, dict[str, Any]]]:
    """(path, pod spec) of every pod template in the object."""
    if (m.group, m.kind) in _KNATIVE:
        paths = [["spec", "template", "spec"]]
    elif (m.group, m.kind) == _ISVC:
        paths = [["spec", part] for part in ("predictor", "transformer", "explainer")]
    elif m.group in ("", "apps", "batch"):
        paths = _POD_PATHS.get(m.kind, [])
    else:
        paths = []
    return [(p, spec) for p in paths if isinstance(spec := _get(m.obj, p), dict)]


@dataclass(frozen=True)
class Container:
    manifest: Manifest
    path: FieldPath  # to the container mapping
    spec: dict[str, Any]
    pod_path: FieldPath
    pod: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.path[-1])


def containers(m: Manifest) -> list[Container]:
    found = []
    for pod_path, pod in pod_specs(m):
        for key in ("initContainers", "containers"):
            for i, c in enumerate(pod.get(key) or []):
                if isinstance(c, dict):
                    found.append(Container(m, [*pod_path, key, i], c, pod_path, pod))
        if (m.group, m.kind) == _ISVC:
            for key in sorted(isvc_model_keys() & set(pod)):
                if isinstance(pod[key], dict):
                    found.append(Container(m, [*pod_path, key], pod[key], pod_path, pod))
    return found


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None  # None: known only at run time (fieldRef) or its source is missing
    file: str  # where the value is written: the workload's file, or the ConfigMap's / Secret's
    obj: str
    field: FieldPath


def _data(m: Manifest) -> dict[str, str]:
    """A ConfigMap's or Secret's values (Secret `data` is base64)."""
    out = {k: str(v) for k, v in (m.obj.get("data") or {}).items()}
    if m.kind == "Secret":
        out = {k: base64.b64decode(v).decode(errors="replace") for k, v in out.items()}
    return {**out, **{k: str(v) for k, v in (m.obj.get("stringData") or {}).items()}}


def _source_field(m: Manifest, key: str) -> FieldPath:
    return ["stringData", key] if key in (m.obj.get("stringData") or {}) else ["data", key]


def resolved_env(c: Container, by_key: dict[tuple[str, str, str], Manifest]) -> dict[str, EnvVar]:
    """The container's environment: envFrom first, then env (which wins), values looked up in the render."""
    ns = c.manifest.namespace
    env: dict[str, EnvVar] = {}
    for source in c.spec.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            src = by_key.get((kind, ns, ref.get("name", ""))) if isinstance(ref, dict) else None
            if src is None:
                continue
            prefix = source.get("prefix", "")
            for k, v in _data(src).items():
                env[prefix + k] = EnvVar(prefix + k, v, src.file, src.label, _source_field(src, k))
    for i, var in enumerate(c.spec.get("env") or []):
        if not isinstance(var, dict) or "name" not in var:
            continue
        name, where = str(var["name"]), [*c.path, "env", i]
        if "value" in var:
            env[name] = EnvVar(name, str(var["value"]), c.manifest.file, c.manifest.label, [*where, "value"])
            continue
        value_from = var.get("valueFrom") or {}
        resolved = None
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            ref = value_from.get(key)
            src = by_key.get((kind, ns, ref.get("name", ""))) if isinstance(ref, dict) else None
            if src is not None and ref.get("key") in _data(src):
                resolved = EnvVar(name, _data(src)[ref["key"]], src.file, src.label, _source_field(src, ref["key"]))
        env[name] = resolved or EnvVar(name, None, c.manifest.file, c.manifest.label, where)
    return env
