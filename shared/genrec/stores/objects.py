"""Object storage over the S3 API (SeaweedFS locally, MinIO or any S3 service in production).

Every place that takes a path also takes an ``s3://bucket/key`` URI. boto3 is imported with the
first client (it takes a second on a small CPU): the admin API imports this module for its
model operations, and should not pay for S3 on every start.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from genrec.config import Settings, get_settings

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig


def s3_client(s: Settings | None = None):
    s = s or get_settings()
    return _cached_client(s.s3.endpoint_url, s.s3.region, s.s3.access_key_id,
                          s.s3.secret_access_key.get_secret_value())


@lru_cache(maxsize=8)
def _cached_client(endpoint_url: str | None, region: str, key_id: str, secret: str):
    # Building a boto3 client costs tens of milliseconds; clients are thread-safe, so share one.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=3, read_timeout=30),
    )


def object_uri(key: str, s: Settings | None = None) -> str:
    """``s3://<settings.s3.bucket>/<key>``."""
    return f"s3://{(s or get_settings()).s3.bucket}/{key.lstrip('/')}"


def is_s3_uri(path: str | Path) -> bool:
    return str(path).startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _transfer_config(s: Settings) -> TransferConfig:
    from boto3.s3.transfer import TransferConfig

    mb = 1024 * 1024
    return TransferConfig(multipart_threshold=s.s3.multipart_threshold_mb * mb,
                          multipart_chunksize=max(5, s.s3.multipart_threshold_mb // 2) * mb)


def upload_file(local: Path, uri: str, s: Settings | None = None) -> str:
    """Upload one file (multipart above the configured threshold)."""
    s = s or get_settings()
    bucket, key = split_uri(uri)
    s3_client(s).upload_file(str(local), bucket, key, Config=_transfer_config(s))
    return uri


def download_file(uri: str, local: Path, s: Settings | None = None) -> Path:
    s = s or get_settings()
    bucket, key = split_uri(uri)
    local.parent.mkdir(parents=True, exist_ok=True)
    s3_client(s).download_file(bucket, key, str(local), Config=_transfer_config(s))
    return local


def upload_dir(local_dir: Path, uri: str, s: Settings | None = None) -> list[str]:
    """Upload a directory tree under an s3:// prefix; returns the object URIs written."""
    s = s or get_settings()
    written = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        target = f"{uri.rstrip('/')}/{path.relative_to(local_dir).as_posix()}"
        written.append(upload_file(path, target, s))
    return written


class UnsafeKey(ValueError):
    """An object key that would be written outside the folder it is downloaded into."""


def local_path(local_dir: Path, rel: str) -> Path:
    """``local_dir / rel``, refused when ``rel`` (from an object key: anyone who can write to the
    bucket chooses it) is absolute or climbs out with ``..``."""
    root = local_dir.resolve()
    target = (root / rel).resolve()
    if target == root or not target.is_relative_to(root):
        raise UnsafeKey(f"object key part {rel!r} would be written outside {local_dir}")
    return target


def download_dir(uri: str, local_dir: Path, s: Settings | None = None) -> Path:
    """Mirror every object under an s3:// prefix into local_dir (nothing is written when a key
    would land outside it: ``UnsafeKey``)."""
    s = s or get_settings()
    bucket, prefix = split_uri(uri.rstrip("/") + "/")
    client = s3_client(s)
    targets = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if rel:
                try:
                    targets.append((obj["Key"], local_path(local_dir, rel)))
                except UnsafeKey:
                    raise UnsafeKey(f"s3://{bucket}/{obj['Key']}: the key would be written outside "
                                    f"{local_dir}; refusing to download {uri}") from None
    for key, target in targets:
        download_file(f"s3://{bucket}/{key}", target, s)
    return local_dir


def put_bytes(uri: str, data: bytes, s: Settings | None = None, *, content_type: str | None = None) -> str:
    bucket, key = split_uri(uri)
    extra = {"ContentType": content_type} if content_type else {}
    s3_client(s).put_object(Bucket=bucket, Key=key, Body=data, **extra)
    return uri


def get_bytes(uri: str, s: Settings | None = None) -> bytes:
    bucket, key = split_uri(uri)
    return s3_client(s).get_object(Bucket=bucket, Key=key)["Body"].read()


def put_json(uri: str, obj: Any, s: Settings | None = None) -> str:
    return put_bytes(uri, json.dumps(obj, default=str).encode(), s, content_type="application/json")


def get_json(uri: str, s: Settings | None = None) -> Any:
    return json.loads(get_bytes(uri, s))


def exists(uri: str, s: Settings | None = None) -> bool:
    bucket, key = split_uri(uri)
    try:
        s3_client(s).head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def iter_uris(prefix_uri: str, s: Settings | None = None) -> Iterator[str]:
    """Every object URI under an ``s3://bucket/prefix`` (plain key prefix, not only "folders")."""
    bucket, prefix = split_uri(prefix_uri)
    for page in s3_client(s).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield f"s3://{bucket}/{obj['Key']}"


def list_uris(prefix_uri: str, s: Settings | None = None) -> list[str]:
    return list(iter_uris(prefix_uri, s))


def delete(uri: str, s: Settings | None = None) -> None:
    """Delete one object (no error when it does not exist, as S3 itself)."""
    bucket, key = split_uri(uri)
    s3_client(s).delete_object(Bucket=bucket, Key=key)


def delete_prefix(prefix_uri: str, s: Settings | None = None) -> int:
    """Delete every object under a prefix, 1,000 per request; returns how many were deleted."""
    client, uris, n = s3_client(s), list_uris(prefix_uri, s), 0
    for start in range(0, len(uris), 1000):
        chunk = [split_uri(u) for u in uris[start:start + 1000]]
        client.delete_objects(Bucket=chunk[0][0], Delete={"Objects": [{"Key": k} for _, k in chunk],
                                                          "Quiet": True})
        n += len(chunk)
    return n
