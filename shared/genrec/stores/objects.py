"""Object storage over the S3 API (SeaweedFS locally, MinIO or any S3 service in production).

Every place that takes a path also takes an ``s3://bucket/key`` URI.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from genrec.config import Settings, get_settings


def s3_client(s: Settings | None = None):
    s = s or get_settings()
    return boto3.client(
        "s3",
        endpoint_url=s.s3.endpoint_url,
        region_name=s.s3.region,
        aws_access_key_id=s.s3.access_key_id,
        aws_secret_access_key=s.s3.secret_access_key.get_secret_value(),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=3, read_timeout=30),
    )


def is_s3_uri(path: str | Path) -> bool:
    return str(path).startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _transfer_config(s: Settings) -> TransferConfig:
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


def download_dir(uri: str, local_dir: Path, s: Settings | None = None) -> Path:
    """Mirror every object under an s3:// prefix into local_dir."""
    s = s or get_settings()
    bucket, prefix = split_uri(uri.rstrip("/") + "/")
    client = s3_client(s)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if rel:
                download_file(f"s3://{bucket}/{obj['Key']}", local_dir / rel, s)
    return local_dir
