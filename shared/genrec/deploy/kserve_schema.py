"""The KServe InferenceService JSON Schema, generated from the model classes the `kserve` wheel ships.

The `kserve` SDK cannot be installed next to genrec (its cloudevents pin conflicts), and
neither PyPI nor npm carries the InferenceService CRD's openAPIV3Schema. The wheel does carry
KServe's openapi-generator models (`kserve/models/v1beta1_*.py`): per class the JSON name
(`attribute_map`) and type (`openapi_types`) of every field, required fields (setters that
raise "must not be `None`") and enums (`allowed_values`). They are read as source, never
imported, and turned into a schema that rejects unknown fields:

    pip download --no-deps kserve==0.21.0 -d /tmp/kserve
    python -m genrec.deploy.kserve_schema /tmp/kserve/kserve-0.21.0-py3-none-any.whl

writes `schemas/kserve-v1beta1.json` next to this module. Kubernetes types (V1Container,
V1Toleration, ...) become references into Kubernetes' definitions (see k8s_schemas), so the
predictor's containers are checked as strictly as a Deployment's.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from genrec.deploy import k8s_schemas
from genrec.deploy.paths import SCHEMAS

OUT = SCHEMAS / "kserve-v1beta1.json"
ROOT = "V1beta1InferenceService"
API_VERSION, KIND = "serving.kserve.io/v1beta1", "InferenceService"
_SCALARS = {"str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
            "bool": {"type": "boolean"}, "object": {}, "datetime": {"type": "string"}, "date": {"type": "string"}}
_REQUIRED = re.compile(r"Invalid value for `(\w+)`, must not be `None`")


def _literal(cls: ast.ClassDef, name: str) -> Any:
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def _enums(cls: ast.ClassDef) -> dict[str, list[Any]]:
    """Field → allowed values, from the setters' `allowed_values = [...]`."""
    found = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            for sub in ast.walk(node):
                if (isinstance(sub, ast.Assign) and getattr(sub.targets[0], "id", None) == "allowed_values"
                        and isinstance(sub.value, ast.List)):
                    found[node.name] = ast.literal_eval(sub.value)
    return found


def read_models(wheel: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """(kserve version, class name → {types, names, required, enums}) from the wheel's models."""
    models: dict[str, dict[str, Any]] = {}
    version = "unknown"
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith(".dist-info/METADATA"):
                match = re.search(r"^Version: (\S+)", zf.read(name).decode(), re.M)
                version = match.group(1) if match else version
            if not (name.startswith("kserve/models/") and name.endswith(".py")):
                continue
            source = zf.read(name).decode()
            for cls in ast.parse(source).body:
                if not isinstance(cls, ast.ClassDef):
                    continue
                types, names = _literal(cls, "openapi_types"), _literal(cls, "attribute_map")
                if types is None or names is None:
                    continue
                segment = ast.get_source_segment(source, cls) or ""
                models[cls.name] = {"types": types, "names": names, "required": _REQUIRED.findall(segment),
                                    "enums": _enums(cls)}
    return version, models


class _Builder:
    def __init__(self, models: dict[str, dict[str, Any]], k8s_names: set[str]) -> None:
        self.models, self.k8s_names = models, k8s_names
        self.defs: dict[str, Any] = {}
        self.unresolved: set[str] = set()

    def k8s(self, type_name: str) -> str | None:
        """Kubernetes' definition for an SDK type name: V1Container → io.k8s.api.core.v1.Container."""
        if type_name == "ResourceQuantity":
            return "io.k8s.apimachinery.pkg.api.resource.Quantity"
        m = re.fullmatch(r"K8sIoApi([A-Z][a-z]+)(V\d+(?:alpha\d+|beta\d+)?)(\w+)", type_name)
        if m:
            candidates = [f"io.k8s.api.{m[1].lower()}.{m[2].lower()}.{m[3]}"]
        else:
            m = re.fullmatch(r"(V\d+(?:alpha\d+|beta\d+)?)(\w+)", type_name)
            if not m:
                return None
            suffix = f".{m[1].lower()}.{m[2]}"
            preferred = [f"io.k8s.api.core{suffix}", f"io.k8s.apimachinery.pkg.apis.meta{suffix}"]
            candidates = preferred + sorted(n for n in self.k8s_names if n.endswith(suffix))
        return next((c for c in candidates if c in self.k8s_names), None)

    def type_schema(self, spec: str) -> dict[str, Any]:
        if spec in _SCALARS:
            return dict(_SCALARS[spec])
        if spec.startswith("list[") and spec.endswith("]"):
            return {"type": "array", "items": self.type_schema(spec[5:-1])}
        m = re.fullmatch(r"dict\(str, (.+)\)", spec)
        if m:
            return {"type": "object", "additionalProperties": self.type_schema(m[1])}
        if spec in self.models:
            self.model(spec)
            return {"$ref": f"#/$defs/{spec}"}
        k8s_name = self.k8s(spec)
        if k8s_name:
            return k8s_schemas.definition_ref(k8s_name)
        self.unresolved.add(spec)
        return {}

    def model(self, name: str) -> None:
        if name in self.defs:
            return
        self.defs[name] = {}  # placeholder against cycles
        m = self.models[name]
        props = {}
        for attr, spec in m["types"].items():
            schema = self.type_schema(spec)
            if attr in m["enums"]:
                schema = {**schema, "enum": m["enums"][attr]}
            props[m["names"][attr]] = schema
        self.defs[name] = {"type": "object", "properties": props, "additionalProperties": False,
                           "required": sorted(m["names"][a] for a in m["required"] if a in m["names"])}


def build(version: str, models: dict[str, dict[str, Any]], k8s_names: set[str]) -> dict[str, Any]:
    builder = _Builder(models, k8s_names)
    builder.model(ROOT)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": f"KServe {API_VERSION} {KIND}, generated by genrec.deploy.kserve_schema from the "
                       f"model classes of the kserve {version} wheel (kserve/models); do not edit.",
        "allOf": [
            {"$ref": f"#/$defs/{ROOT}"},
            {"properties": {"apiVersion": {"const": API_VERSION}, "kind": {"const": KIND}},
             "required": ["apiVersion", "kind", "metadata", "spec"]},
        ],
        "x-kserve-version": version,
        "x-unresolved-types": sorted(builder.unresolved),  # accepted as anything: no schema known
        "$defs": dict(sorted(builder.defs.items())),
    }


def load() -> dict[str, Any]:
    return json.loads(OUT.read_text())


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: python -m genrec.deploy.kserve_schema KSERVE_WHEEL")
    version, models = read_models(Path(args[0]))
    schema = build(version, models, k8s_schemas.definition_names())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} (kserve {version}, {len(schema['$defs'])} types, unresolved: {schema['x-unresolved-types']})")


if __name__ == "__main__":
    main()
