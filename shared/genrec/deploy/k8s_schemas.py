"""Kubernetes' own schemas, from the `kubernetes-validate` package (one JSON Schema per kind and version).

The files are read directly, in the layout `kubernetes_validate.validate` reads them, because
its `validate` stops at the first error and a check should list them all. The strict variant
rejects unknown fields (the API server's strict field validation does too). The shared
definitions (`io.k8s.api.core.v1.Container`, ...) also resolve references in the KServe schema.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate
from packaging.version import Version
from referencing import Registry, Resource

# Kubernetes minor whose API the render is validated against: the newest kubernetes-validate ships.
KUBE_VERSION = "1.37"
DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"


def _schemas_root() -> Any:
    return resources.files("kubernetes_validate") / "kubernetes-json-schema"


@lru_cache(maxsize=4)
def _version_dir(version: str) -> Any:
    """The packaged schema folder for the newest Kubernetes version not newer than `version`."""
    want = Version(version.lstrip("v"))
    packaged = sorted((Version(d.name[1:].split("-")[0]), d.name) for d in _schemas_root().iterdir()
                      if d.name.endswith("-local-strict"))
    usable = [name for v, name in packaged if (v.major, v.minor) <= (want.major, want.minor)]
    if not usable:
        raise ValueError(f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes "
                         f"{version} (newest: {kubernetes_validate.latest_version()})")
    return _schemas_root() / usable[-1]


@lru_cache(maxsize=4)
def registry(version: str = KUBE_VERSION) -> Registry:
    """A referencing registry holding Kubernetes' shared definitions."""
    defs = json.loads((_version_dir(version) / "_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


def is_core_group(group: str) -> bool:
    """Groups Kubernetes itself serves (kubernetes-validate has their schemas); others are CRDs."""
    return "." not in group or group.endswith(".k8s.io")


@lru_cache(maxsize=256)
def _kind_schema(kind: str, api_version: str, version: str) -> dict[str, Any] | None:
    # kubernetes-validate's file names: rbac.authorization.k8s.io/v1 → rbac-v1, v1 → v1
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _version_dir(version) / f"{kind.lower()}-{api}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def has_schema(obj: dict[str, Any], version: str = KUBE_VERSION) -> bool:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return is_core_group(group) and _kind_schema(str(obj.get("kind")), str(obj.get("apiVersion")), version) is not None


def _message(error: jsonschema.ValidationError) -> str:
    text = error.message
    return text if len(text) <= 240 else text[:237] + "..."


def errors_against(schema: dict[str, Any], instance: Any, version: str = KUBE_VERSION) -> list[tuple[list, str]]:
    """(path parts, message) of every violation of `schema` (which may use Kubernetes' definitions)."""
    validator = jsonschema.Draft202012Validator(schema, registry=registry(version))
    return [(list(e.absolute_path), _message(e)) for e in sorted(validator.iter_errors(instance), key=str)]


def validate(obj: dict[str, Any], version: str = KUBE_VERSION) -> list[tuple[list, str]]:
    """Violations of a core Kubernetes object against its strict schema (has_schema must hold)."""
    schema = _kind_schema(str(obj["kind"]), str(obj["apiVersion"]), version)
    assert schema is not None, "has_schema first"
    return errors_against(schema, obj, version)


def definition_ref(name: str) -> dict[str, str]:
    """A $ref to one shared definition, e.g. io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta."""
    return {"$ref": f"{DEFINITIONS_URI}#/$defs/{name}"}


def definition_names(version: str = KUBE_VERSION) -> set[str]:
    return set(json.loads((_version_dir(version) / "_definitions.json").read_text())["$defs"])
