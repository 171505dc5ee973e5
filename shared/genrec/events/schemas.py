"""The published JSON Schemas (genrec/schemas/*.json), generated from the contract models."""

from __future__ import annotations

import json
from pathlib import Path

from genrec.events.contracts import EVENT_TYPES, json_schema

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render_all() -> dict[str, str]:
    """File name → JSON text for every event type."""
    return {f"{t}.json": json.dumps(json_schema(t), indent=2, sort_keys=True) + "\n" for t in sorted(EVENT_TYPES)}


def write_all(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written
