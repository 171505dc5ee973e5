"""One finding of `genrec deploy check`: where (file, object, field) and what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    obj: str  # Kind/name
    field: str  # dotted path with [i] for list items; "" for the whole object
    message: str
    source: str  # the validator or invariant that found it

    def __str__(self) -> str:
        where = f"{self.obj} {self.field}" if self.field else self.obj
        return f"{self.file}: {where}: {self.message} [{self.source}]"


def field_path(parts: Iterable[str | int]) -> str:
    """('spec', 'containers', 0, 'image') → 'spec.containers[0].image'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def pointer_path(pointer: str) -> str:
    """A JSON pointer ('/spec/containers/0/image') → 'spec.containers[0].image'."""
    parts: list[str | int] = []
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(token) if token.isdigit() else token)
    return field_path(parts)
