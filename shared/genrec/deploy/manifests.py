"""A rendered folder read back: every YAML document with the file it came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genrec.deploy.render import HELM_API, group_of


@dataclass(frozen=True)
class Manifest:
    file: str  # relative to the rendered folder
    obj: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace", ""))

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def is_helm(self) -> bool:
        return self.group == HELM_API

    def spec(self) -> dict[str, Any]:
        spec = self.obj.get("spec")
        return spec if isinstance(spec, dict) else {}


class ManifestError(ValueError):
    pass


def load(folder: Path) -> list[Manifest]:
    """Every object under `folder` (files in sorted order, several documents per file allowed)."""
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    found = []
    for path in sorted(folder.rglob("*.y*ml")):
        rel = path.relative_to(folder).as_posix()
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as exc:
            raise ManifestError(f"{rel}: not YAML: {exc}") from exc
        for doc in docs:
            if not isinstance(doc, dict):
                raise ManifestError(f"{rel}: a document is not a mapping")
            found.append(Manifest(rel, doc))
    return found


def index(manifests: list[Manifest]) -> dict[tuple[str, str, str], Manifest]:
    """(kind, namespace, name) → manifest: how references between objects are resolved."""
    return {(m.kind, m.namespace, m.name): m for m in manifests}


def walk(value: Any, path: list[Any]) -> Iterator[tuple[list[Any], str | int, Any, Any]]:
    """(path to parent, key, value, parent) for every entry below `value`."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k, v, value
            yield from walk(v, [*path, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path, i, v, value
            yield from walk(v, [*path, i])
