"""Read-only view of a trained artifact directory for serving, plus the production pointer.

Serving needs only ``manifest.json``, ``model.pt``, ``item_ids.json`` and ``item_codes.npy``
(not the tokenizer, text embedder or pandas), so this reads them directly instead of going
through ``TrainedBundle.load``: the model server's slim virtualenv lacks those dependencies.
No torch import here either, so the recommend function can use it for id mapping.

The *version* of an artifact is a hash of its manifest: a local copy and its s3:// upload
get the same version, so every replica and the cold-start function agree on the code feed.

The production pointer (which artifact the local model server serves) is the Redis key
``serving:current`` when set, else the file ``<artifacts_dir>/CURRENT`` (a dir or s3:// URI).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from genrec.config import Settings, get_settings
from genrec.serving import keys

log = logging.getLogger(__name__)

ARTIFACT_KIND = "genrec-generative-retrieval"
POINTER_FILE = "CURRENT"
REQUIRED_FILES = ("manifest.json", "model.pt", "item_ids.json", "item_codes.npy")


class ArtifactError(RuntimeError):
    """The artifact is missing, incomplete or of an unknown format."""


def artifact_version(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()[:16]


def _is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def fetch(uri: str, s: Settings | None = None, cache_dir: Path | None = None) -> Path:
    """A local directory holding the artifact at ``uri`` (downloaded once if it is s3://)."""
    if not _is_s3(uri):
        return Path(uri)
    from genrec.stores.objects import download_dir  # boto3: only needed for s3 artifacts

    root = cache_dir or Path(tempfile.gettempdir()) / "genrec-artifacts"
    root.mkdir(parents=True, exist_ok=True)
    local = root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (local / ".complete").exists():
        return local
    # Download beside the target and rename, so a half-downloaded folder is never used.
    tmp = Path(tempfile.mkdtemp(prefix=local.name + ".", dir=root))
    download_dir(uri, tmp, s or get_settings())
    (tmp / ".complete").touch()
    if local.exists():
        shutil.rmtree(local, ignore_errors=True)
    tmp.replace(local)
    return local


@dataclass
class ServingArtifact:
    uri: str
    root: Path
    manifest: dict[str, Any] = field(repr=False)
    version: str

    @classmethod
    def open(cls, uri: str | Path, s: Settings | None = None, cache_dir: Path | None = None) -> ServingArtifact:
        uri = str(uri)
        root = fetch(uri, s, cache_dir)
        missing = [f for f in REQUIRED_FILES if not (root / f).exists()]
        if missing:
            raise ArtifactError(f"{uri} is not a trained artifact: missing {', '.join(missing)}")
        raw = (root / "manifest.json").read_bytes()
        manifest = json.loads(raw)
        if manifest.get("kind", ARTIFACT_KIND) != ARTIFACT_KIND:
            raise ArtifactError(f"{uri}: unexpected artifact kind {manifest.get('kind')!r}")
        version = str(manifest.get("version") or artifact_version(raw))
        return cls(uri=uri, root=root, manifest=manifest, version=version)

    @property
    def level_sizes(self) -> list[int]:
        return [int(v) for v in self.manifest["level_sizes"]]

    @property
    def model_config(self) -> dict[str, Any]:
        return dict(self.manifest["config"]["model"])

    @property
    def max_history(self) -> int:
        return int(self.manifest["config"].get("max_history", self.model_config.get("max_history", 20)))

    @property
    def user_buckets(self) -> int:
        return int(self.model_config.get("user_buckets", 1))

    @cached_property
    def item_ids(self) -> list[str]:
        return [str(i) for i in json.loads((self.root / "item_ids.json").read_text())]

    @cached_property
    def item_codes(self) -> np.ndarray:
        return np.load(self.root / "item_codes.npy").astype(np.int64)

    @property
    def n_items(self) -> int:
        return int(self.manifest.get("n_items") or len(self.item_codes))

    @property
    def weights_path(self) -> Path:
        return self.root / "model.pt"


# ------------------------------------------------------------------ pointer
def pointer_file(s: Settings) -> Path:
    return Path(s.model.artifacts_dir) / POINTER_FILE


def resolve_current(s: Settings | None = None, redis_client: Any = None) -> str | None:
    """URI of the production artifact, or None when nothing was promoted yet."""
    s = s or get_settings()
    if redis_client is not None:
        try:
            value = redis_client.get(keys.CURRENT)
            if value:
                return value.decode() if isinstance(value, bytes) else str(value)
        except Exception as exc:  # Redis down: fall back to the file rather than fail serving
            log.warning("could not read %s from Redis: %s", keys.CURRENT, exc)
    path = pointer_file(s)
    if path.exists():
        target = path.read_text().strip()
        if target:
            # Relative pointers name a folder next to the pointer file.
            return target if _is_s3(target) or Path(target).is_absolute() else str(path.parent / target)
    if (Path(s.model.artifacts_dir) / "manifest.json").exists():
        return str(Path(s.model.artifacts_dir))
    return None


def set_current(uri: str | Path, s: Settings | None = None, redis_client: Any = None) -> ServingArtifact:
    """Promote an artifact: validate it, then point the file (and Redis, when given) at it.

    Every model server replica following the pointer loads it in the background and
    swaps it in without dropping requests.
    """
    s = s or get_settings()
    uri = str(uri) if _is_s3(str(uri)) else str(Path(uri).resolve())
    art = ServingArtifact.open(uri, s)
    path = pointer_file(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(uri + "\n")
    tmp.replace(path)  # atomic: a poller never reads half a pointer
    if redis_client is not None:
        pipe = redis_client.pipeline(transaction=False)
        pipe.hset(keys.ARTIFACTS, art.version, uri)
        pipe.set(keys.CURRENT, uri)
        pipe.execute()
    return art


@dataclass(frozen=True)
class Canary:
    """The version a share of users is served instead of production (the registry's canary)."""

    uri: str
    version: str
    weight: float  # share of users, 0..1

    def takes(self, user_id: str | None) -> bool:
        """Whether this user is in the canary's share: a stable hash of the version and the user,
        so a user sees one version throughout and each canary draws a fresh sample."""
        if not user_id or self.weight <= 0:
            return False
        digest = hashlib.blake2b(f"{self.version}/{user_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < self.weight * 2**64


def read_canary(redis_client: Any) -> Canary | None:
    fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
              for k, v in (redis_client.hgetall(keys.CANARY) or {}).items()}
    if not fields.get("uri"):
        return None
    return Canary(fields["uri"], fields.get("version", ""), float(fields.get("weight", 0.0)))


def set_canary(redis_client: Any, canary: Canary | None) -> None:
    """Point the canary slot of every model server at an artifact (None: no canary)."""
    pipe = redis_client.pipeline(transaction=False)
    pipe.delete(keys.CANARY)
    if canary is not None:
        pipe.hset(keys.ARTIFACTS, canary.version, canary.uri)
        pipe.hset(keys.CANARY, mapping={"uri": canary.uri, "version": canary.version, "weight": str(canary.weight)})
    pipe.execute()


def resolve_slot(slot: str, s: Settings | None = None, redis_client: Any = None) -> str | None:
    """The artifact a model following ``slot`` serves: ``current`` (production) or ``canary``."""
    if slot == "canary":
        canary = read_canary(redis_client) if redis_client is not None else None
        return canary.uri if canary else None
    return resolve_current(s, redis_client)


def register_version(redis_client: Any, art: ServingArtifact) -> None:
    """Record version -> URI so clients can map indices of whatever version answered."""
    redis_client.hset(keys.ARTIFACTS, art.version, art.uri)


def uri_for_version(redis_client: Any, version: str) -> str | None:
    value = redis_client.hget(keys.ARTIFACTS, version)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
