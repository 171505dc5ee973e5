"""``manifest.json`` of a feature output: what went in, what came out, and fingerprints.

``hashes.sequences`` / ``items`` / ``events`` are content hashes (independent of file layout
and Spark partitioning): two runs over the same events give the same values, so a changed
hash means changed training data. ``files`` holds the sha256 of every written file.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from genrec.config import Settings
from genrec.pipelines.schema import FEATURES_FORMAT, FEATURES_FORMAT_VERSION, MANIFEST
from genrec.stores import objects


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of each data file under ``root`` (Spark's ``.crc`` and ``_SUCCESS`` markers skipped)."""
    out: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith((".", "_")) or path.name == MANIFEST:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out[path.relative_to(root).as_posix()] = digest.hexdigest()
    return out


def build_manifest(*, source: dict[str, Any], params: dict[str, Any], counts: dict[str, int],
                   time_range: dict[str, Any], hashes: dict[str, str], files: dict[str, str],
                   output: str, seconds: float) -> dict[str, Any]:
    return {
        "format": FEATURES_FORMAT,
        "format_version": FEATURES_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "output": output,
        "source": source,
        "params": params,
        "counts": counts,
        "time_range": time_range,
        "hashes": {**hashes, "files": files},
        "seconds": round(seconds, 1),
    }


def write_manifest(target: Path | str, manifest: dict[str, Any], s: Settings | None = None) -> None:
    """Into a local folder, or an s3a:// / s3:// prefix (direct cluster writes)."""
    if isinstance(target, Path) or not str(target).startswith(("s3://", "s3a://")):
        path = Path(target) / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        tmp.replace(path)
        return
    uri = "s3://" + str(target).split("://", 1)[1].rstrip("/") + f"/{MANIFEST}"
    objects.put_json(uri, manifest, s)


def read_manifest(root: str | Path, s: Settings | None = None) -> dict[str, Any]:
    if str(root).startswith("s3://"):
        return objects.get_json(str(root).rstrip("/") + f"/{MANIFEST}", s)
    return json.loads((Path(root) / MANIFEST).read_text())
