"""Every Secret (and ServiceAccount) something reads is created in the same render; secret values stay in Secrets.

References followed, in the reader's namespace: `secretKeyRef` (with its key), `envFrom[].secretRef`,
volume `secretName`, `secret: {name}` (projected volumes, CloudNativePG's initdb secret),
`imagePullSecrets`, a ServiceAccount's `secrets`, a pod's `serviceAccountName`, Altinity's
`<user>/k8s_secret_*` users (`namespace/name/key`), and a Helm release's `existingSecret`
values (in the release's namespace). `optional: true` references are skipped.
A render shows secret values as placeholders; one outside a Secret means a value leaked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from genrec.deploy.invariants.context import Context, problem
from genrec.deploy.manifests import Manifest, walk
from genrec.deploy.problems import Problem
from genrec.deploy.workloads import pod_specs

SOURCE = "invariant:secrets"
PLACEHOLDER_MARKS = ("<generated at pulumi up", "<pulumi config secret")

Ref = tuple[list[Any], str, str, str | None]  # (field path, kind, name, key)


def _named(value: Any) -> str | None:
    if isinstance(value, dict) and not value.get("optional") and isinstance(value.get("name"), str):
        return value["name"]
    return None


def references(m: Manifest) -> Iterator[Ref]:
    """Secret and ServiceAccount references an object makes."""
    for path, key, value, parent in walk(m.obj, []):
        here = [*path, key]
        if key == "secretKeyRef" and (name := _named(value)):
            yield here, "Secret", name, value.get("key")
        elif key == "secretRef" and (name := _named(value)):
            yield here, "Secret", name, None
        elif key == "secretName" and isinstance(value, str) and not parent.get("optional"):
            yield here, "Secret", value, None
        elif key == "secret" and (name := _named(value)):
            yield here, "Secret", name, None
        elif key == "imagePullSecrets" and isinstance(value, list):
            yield from ((here, "Secret", n, None) for v in value if (n := _named(v)))
        elif m.is_helm and key == "existingSecret" and isinstance(value, str) and value:
            secret_key = next((parent[k] for k in ("existingSecretKey", "existingSecretPasswordKey") if k in parent),
                              None)
            yield here, "Secret", value, secret_key
        elif isinstance(key, str) and "/k8s_secret_" in key and isinstance(value, str):
            parts = value.split("/")  # [namespace/]name/key
            if len(parts) in (2, 3):
                yield here, "Secret", "/".join(parts[:-1]), parts[-1]
    if m.kind == "ServiceAccount" and m.group == "":
        for i, s in enumerate(m.obj.get("secrets") or []):
            if name := _named(s):
                yield ["secrets", i], "Secret", name, None
    for pod_path, pod in pod_specs(m):
        sa = pod.get("serviceAccountName")
        if isinstance(sa, str) and sa != "default":
            yield [*pod_path, "serviceAccountName"], "ServiceAccount", sa, None


def _keys(secret: Manifest) -> set[str]:
    return set(secret.obj.get("data") or {}) | set(secret.obj.get("stringData") or {})


def _leaks(m: Manifest) -> Iterator[Problem]:
    for path, key, value, _parent in walk(m.obj, []):
        if isinstance(value, str) and any(mark in value for mark in PLACEHOLDER_MARKS):
            yield problem(m, [*path, key], "a secret value outside a Secret (it would be stored in plain text)",
                          SOURCE)


def check(ctx: Context) -> list[Problem]:
    found: list[Problem] = []
    for m in ctx.manifests:
        if m.kind != "Secret":
            found += _leaks(m)
        for path, kind, name, key in references(m):
            namespace, _, short = name.rpartition("/") if "/" in name else (m.namespace, "", name)
            target = ctx.find(kind, namespace, short)
            if target is None:
                found.append(problem(m, path, f"{kind} {namespace}/{short} is not created by this render", SOURCE))
            elif key is not None and kind == "Secret" and key not in _keys(target):
                found.append(problem(m, path, f"Secret {namespace}/{short} has no key {key!r} "
                                              f"(it has {sorted(_keys(target))})", SOURCE))
    return found
