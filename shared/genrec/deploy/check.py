"""`genrec deploy check DIR`: schemas and genrec's invariants over a rendered folder → a report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genrec.deploy import invariants, k8s_schemas, schemas_check
from genrec.deploy.invariants.context import Context
from genrec.deploy.manifests import load
from genrec.deploy.problems import Problem
from genrec.deploy.render import read_marker

DEV_STACK = "dev"  # the one stack allowed to look like a development deployment


@dataclass
class Report:
    stack: str | None
    production: bool
    objects: int
    problems: list[Problem]
    coverage: dict[str, list[str]]  # validator → files it covered

    @property
    def ok(self) -> bool:
        return not self.problems


def check(folder: Path, *, production: bool | None = None, kube_version: str = k8s_schemas.KUBE_VERSION) -> Report:
    """Validate every object under `folder`. `production` defaults from the render's stack (all but dev)."""
    manifests = load(folder)
    marker = read_marker(folder)
    stack = marker["stack"] if marker else None
    if production is None:
        production = stack != DEV_STACK
    schema = schemas_check.validate(manifests, kube_version)
    found = schema.problems + invariants.run(Context(manifests, production))
    return Report(stack, production, len(manifests), sorted(found, key=lambda p: (p.file, p.field, p.source)),
                  dict(schema.coverage))
