"""Knative, Istio and Prometheus-operator kinds, checked by infra/validate/validate.mjs (npm @kubernetes-models).

One `node` process for the whole render: objects go in as a JSON array on stdin, one result per
object comes back (status valid / invalid / partial / unknown, errors with their field path).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genrec.deploy.paths import NODE_VALIDATOR

SCRIPT = "validate.mjs"


class NodeValidatorMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Result:
    status: str  # valid | invalid | partial | unknown
    errors: list[tuple[list[str | int], str]]
    checked: list[str]  # "" = the whole object, else the parts a model covered


def _parts(path: list[str]) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path]


def ensure_installed(folder: Path | None = None) -> str:
    folder = folder or NODE_VALIDATOR
    node = shutil.which("node")
    if node is None:
        raise NodeValidatorMissing("`node` is not on PATH (Node 20+ is needed for the Knative/Istio/Prometheus checks)")
    if not (folder / "node_modules" / "@kubernetes-models").is_dir():
        raise NodeValidatorMissing(f"{folder}/node_modules is missing: run `make install` "
                                   f"(or `npm ci` in {folder})")
    return node


def validate(objects: list[dict[str, Any]], folder: Path | None = None, timeout_s: float = 120) -> list[Result]:
    if not objects:
        return []
    folder = folder or NODE_VALIDATOR
    node = ensure_installed(folder)
    proc = subprocess.run([node, SCRIPT], cwd=folder, input=json.dumps(objects), capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{folder / SCRIPT} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    raw = json.loads(proc.stdout)
    return [Result(r["status"], [(_parts(e["path"]), e["message"]) for e in r["errors"]], r["checked"]) for r in raw]
