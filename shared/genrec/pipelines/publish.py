"""Publishing and promotion: S3 artifact, serving export, registry, and the serving pointer.

* ``publish_candidate``: artifact -> ``s3://{bucket}/models/{version}/``, its exported Triton
  repository -> ``.../serving/``, registry row ``candidate`` with metrics; and the production
  model server's repository (``genrec.serving.repository.production_repository_uri``, the
  InferenceService's storageUri), which follows the production pointer.
* ``promote``: ``--canary W`` makes it a canary with traffic weight W: the model servers'
  canary slot serves it and recommend sends that share of users to it (``serve_canary``; the
  production pointer is untouched); otherwise it becomes production (the old one retires) and
  the model server is switched to it through ``genrec.serving.artifact.set_current``.
* ``rollback``: the registry restores the previously promoted version; the pointer follows.

The artifact's ``manifest.json`` gets ``"version": <registry version>``, so the version the
model server reports (``algorithm_version`` in the recommend API) is the registry's name.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genrec.config import Settings, get_settings
from genrec.stores import objects
from genrec.stores.model_registry import ModelRegistry, ModelVersion, RegistryError

MODELS_PREFIX = "models"
SERVING_SUBDIR = "serving"


def new_version(now: float | None = None) -> str:
    """Sortable and unique: ``v20261124-021500-3fa9c1``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"v{stamp}-{secrets.token_hex(3)}"


def artifact_uri(version: str, s: Settings | None = None) -> str:
    return objects.object_uri(f"{MODELS_PREFIX}/{version}", s)


def stamp_manifest(artifact_dir: Path, version: str, extra: dict[str, Any]) -> None:
    """Name the artifact after its registry version (serving reports ``manifest["version"]``)."""
    path = artifact_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["version"] = version
    manifest["pipeline"] = extra
    path.write_text(json.dumps(manifest, indent=2, default=str))


def export_serving(artifact_dir: Path, out_dir: Path, s: Settings, fmt: str = "torchscript",
                   log: Callable[[str], None] = lambda _m: None) -> dict[str, Any] | None:
    """The Triton model repository of an artifact (``genrec export``); None if the exporter is absent."""
    try:
        from genrec.serving.export import export_repository
    except ImportError:  # a slim install without the serving package
        return None
    report = export_repository(artifact_dir, fmt, out_dir, settings=s, log=log)
    if not report.ok():
        raise RuntimeError(f"serving export failed its parity check: {report.as_dict()}")
    return report.as_dict()


@dataclass
class Published:
    version: str
    artifact_uri: str
    serving_uri: str | None
    registered: ModelVersion


def publish_candidate(artifact_dir: Path, version: str, metrics: dict[str, Any], registry: ModelRegistry,
                      s: Settings | None = None, *, export: bool = True, export_format: str = "torchscript",
                      log: Callable[[str], None] = lambda _m: None) -> Published:
    """Upload a saved bundle (+ its serving repository) and register it as a ``candidate``."""
    s = s or get_settings()
    uri = artifact_uri(version, s)
    stamp_manifest(artifact_dir, version, {"metrics": metrics})
    objects.upload_dir(artifact_dir, uri, s)
    serving_uri = None
    if export:
        with tempfile.TemporaryDirectory(prefix="genrec-export-") as tmp:
            report = export_serving(artifact_dir, Path(tmp), s, export_format, log)
            if report is not None:
                serving_uri = f"{uri}/{SERVING_SUBDIR}"
                objects.upload_dir(Path(tmp), serving_uri, s)
                metrics = {**metrics, "export": {k: report[k] for k in ("format", "ok", "item_match", "seconds")
                                                 if k in report}}
    registered = registry.register(version, uri, serving_uri=serving_uri, metrics=metrics)
    if export:  # the production server's repository (follows the pointer): kept current with the code
        from genrec.serving.repository import write_production_repository

        write_production_repository(s)
    return Published(version, uri, serving_uri, registered)


def switch_serving(uri: str, s: Settings | None = None, use_redis: bool = True) -> str:
    """Point the model server(s) at ``uri``; returns the version the server will report."""
    from genrec.serving.artifact import set_current

    s = s or get_settings()
    client = None
    if use_redis:
        from genrec.stores.hot_state import redis_client

        client = redis_client(s)
    return set_current(uri, s, client).version


def serve_canary(registry: ModelRegistry, s: Settings | None = None, *, use_redis: bool = True):
    """Put the registry's canary in the model servers' canary slot, with its weight: the one
    with the largest weight (one canary is served at a time; the weights of any others stay
    with production). No canary with traffic: the slot is emptied. Returns what is served."""
    if not use_redis:  # the canary slot lives in Redis only
        return None
    from genrec.serving.artifact import Canary, set_canary
    from genrec.stores.hot_state import redis_client

    live = [m for m in registry.list(status="canary") if m.traffic_weight > 0]
    served = max(live, key=lambda m: m.traffic_weight, default=None)
    canary = Canary(served.artifact_uri, served.version, float(served.traffic_weight)) if served else None
    set_canary(redis_client(s or get_settings()), canary)
    return canary


def promote(version: str, registry: ModelRegistry, s: Settings | None = None, *, canary: float | None = None,
            use_redis: bool = True) -> ModelVersion:
    """Canary (with a traffic weight: that share of users gets it) or production (serving
    switches to it)."""
    s = s or get_settings()
    current = registry.get(version)
    if current is None:
        raise RegistryError(f"unknown model version {version!r}")
    from genrec.serving.artifact import ServingArtifact

    ServingArtifact.open(current.artifact_uri, s)  # validate before users are sent to it
    if canary is not None:
        promoted = registry.set_status(version, "canary", traffic_weight=canary)
    else:
        promoted = registry.promote(version)
        switch_serving(promoted.artifact_uri, s, use_redis)
    serve_canary(registry, s, use_redis=use_redis)
    return promoted


def rollback(registry: ModelRegistry, s: Settings | None = None, *, use_redis: bool = True) -> ModelVersion:
    """Restore the previously promoted version in the registry and in serving."""
    restored = registry.rollback()
    switch_serving(restored.artifact_uri, s, use_redis)
    serve_canary(registry, s, use_redis=use_redis)
    return restored
