"""What every invariant sees: the rendered objects, indexed, and whether the stack is a production one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genrec.deploy.manifests import Manifest, index
from genrec.deploy.problems import Problem, field_path


@dataclass
class Context:
    manifests: list[Manifest]
    production: bool  # every stack but `dev`: the dev-address rule applies
    by_key: dict[tuple[str, str, str], Manifest] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = index([m for m in self.manifests if not m.is_helm])

    def objects(self) -> list[Manifest]:
        """Kubernetes objects (Helm releases are not)."""
        return [m for m in self.manifests if not m.is_helm]

    def of(self, group: str, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.group == group and m.kind == kind]

    def find(self, kind: str, namespace: str, name: str) -> Manifest | None:
        return self.by_key.get((kind, namespace, name))


def problem(m: Manifest, path: list[Any], message: str, source: str) -> Problem:
    return Problem(m.file, m.label, field_path(path), message, source)
