"""What the Pulumi program registers → one readable YAML file per object.

Layout: `DIR/<namespace>/<Kind>-<name>.yaml` for core kinds, `<Kind>.<group>-<name>.yaml` for
every other API group (a Knative `Service` and a core `Service` of one name stay apart);
cluster-scoped objects go to `_cluster/`, namespaced ones registered without a namespace (the
provider's default namespace at `pulumi up`) to `_default/`. Each file holds the object exactly
as registered (apiVersion, kind, metadata, then the other inputs), keys sorted, except:

* secret values (pulumi-random results, secret config) are placeholders such as
  `<generated at pulumi up: postgres-genrec>`, also inside composed strings (DSNs);
* Helm releases are not Kubernetes objects: each is a `HelmRelease-<name>.yaml` naming chart,
  repository, version and values (Helm expands the chart only at `pulumi up`);
* random passwords (and providers, if registered) are not written: they are not cluster objects.

`DIR/.genrec-render.json` records the stack and the files, so a re-render replaces exactly
the previous render and `genrec deploy check` knows which stack it is looking at.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MARKER = ".genrec-render.json"
HELM_API = "helm.sh"  # Pulumi type tokens kubernetes:helm.sh/v3:Release, kubernetes:helm.sh/v4:Chart
_CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}
# Kinds without a namespace; any other kind is namespaced.
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "StorageClass", "PriorityClass", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "APIService", "IngressClass", "RuntimeClass", "CSIDriver", "ClusterServingRuntime", "ClusterIssuer",
}
_HELM_INTERNAL = {"compat"}  # set by pulumi-kubernetes itself, not by the program


class RenderError(ValueError):
    pass


@dataclass
class Rendered:
    stack: str
    files: dict[str, str] = field(default_factory=dict)  # relative path → YAML text
    skipped: list[str] = field(default_factory=list)  # "type name" of what is not a cluster object


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def file_name(obj: dict[str, Any]) -> str:
    kind, name = obj["kind"], obj["metadata"]["name"]
    group = group_of(obj["apiVersion"])
    qualified = kind if group in _CORE_GROUPS or group.endswith(".k8s.io") else f"{kind}.{group}"
    return f"{qualified}-{name}.yaml"


def folder(obj: dict[str, Any]) -> str:
    ns = obj.get("metadata", {}).get("namespace")
    if ns:
        return ns
    return "_cluster" if obj["kind"] in CLUSTER_SCOPED else "_default"


def placeholders(value: Any, secrets: dict[str, str]) -> Any:
    """Every secret value, also inside a longer string, replaced by its placeholder."""
    if isinstance(value, str):
        for token, placeholder in secrets.items():
            value = value.replace(token, placeholder)
        return value
    if isinstance(value, dict):
        return {k: placeholders(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [placeholders(v, secrets) for v in value]
    return value


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def ordered_object(inputs: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first (as kubectl shows them), everything else sorted."""
    head = {k: _sorted(inputs[k]) for k in ("apiVersion", "kind", "metadata") if k in inputs}
    return {**head, **{k: _sorted(inputs[k]) for k in sorted(inputs) if k not in head}}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # config files and scripts stay readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: dict[str, Any], header: str = "") -> str:
    body = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return header + body


def helm_document(resource: dict[str, Any]) -> tuple[str, str]:
    """(relative path, text) of a Helm release: what Pulumi hands Helm, with a comment saying so."""
    inputs = resource["inputs"]
    api = resource["type"].split(":")[1]  # helm.sh/v3
    kind = resource["type"].rsplit(":", 1)[1]  # Release | Chart
    name = inputs.get("name") or resource["name"]
    namespace = inputs.get("namespace") or "_default"
    repo = (inputs.get("repositoryOpts") or {}).get("repo") or inputs.get("repo") or ""
    chart, version = inputs.get("chart", ""), inputs.get("version", "")
    options = {k: v for k, v in inputs.items()
               if k not in {"name", "namespace", "chart", "version", "repositoryOpts", "values"} | _HELM_INTERNAL}
    doc = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace},
           "chart": chart, "repo": repo, "version": version, "values": _sorted(inputs.get("values") or {}),
           "options": _sorted(options)}
    header = (f"# Helm {kind.lower()}, not a Kubernetes object: at `pulumi up`, Pulumi ({api}) installs chart\n"
              f"# `{chart}` {version} from {repo or '(no repository)'} as {namespace}/{name}; Helm expands it\n"
              f"# into the chart's objects only then. `values` are exactly what the program passes.\n")
    return f"{namespace}/Helm{kind}-{name}.yaml", dump(doc, header)


def render(registered: dict[str, Any]) -> Rendered:
    """Rendered files for one stack's registered resources (the output of `mockrun.run`)."""
    secrets = {s["value"]: s["placeholder"] for s in registered.get("secrets", [])}
    out = Rendered(stack=registered["stack"])
    for resource in registered["resources"]:
        typ = resource["type"]
        inputs = placeholders(resource["inputs"], secrets)
        if typ.startswith(f"kubernetes:{HELM_API}/"):
            path, text = helm_document({**resource, "inputs": inputs})
        elif typ.startswith("kubernetes:") and {"apiVersion", "kind", "metadata"} <= set(inputs):
            path = f"{folder(inputs)}/{file_name(inputs)}"
            text = dump(ordered_object(inputs))
        else:  # random passwords, providers: state in Pulumi, nothing in the cluster
            out.skipped.append(f"{typ} {resource['name']}")
            continue
        if path in out.files:
            raise RenderError(f"two resources render to {path}: `pulumi up` would fail on the second one")
        out.files[path] = text
    return out


def write(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write a render, replacing a previous render in `out_dir` (and refusing any other non-empty folder)."""
    marker = out_dir / MARKER
    if out_dir.exists() and any(out_dir.iterdir()):
        if not marker.exists():
            raise RenderError(f"{out_dir} is not empty and holds no earlier render ({MARKER}); choose another --out")
        for old in json.loads(marker.read_text())["files"]:
            (out_dir / old).unlink(missing_ok=True)
        for sub in sorted(out_dir.iterdir()):
            if sub.is_dir() and not any(sub.rglob("*")):
                shutil.rmtree(sub)
    written = []
    for rel, text in sorted(rendered.files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"stack": rendered.stack, "files": sorted(rendered.files),
                                  "skipped": rendered.skipped}, indent=1) + "\n")
    return written


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    marker = out_dir / MARKER
    return json.loads(marker.read_text()) if marker.exists() else None
