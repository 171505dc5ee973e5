"""A small S3 hook for checkpoints and artifacts (endpoint from ``get_settings().s3``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.strip("/")


def s3_client() -> Any:
    import boto3

    from genrec.config import get_settings

    s3 = get_settings().s3
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key.get_secret_value(),
    )


def upload_dir(local: str | Path, uri: str) -> None:
    """Copy every file under ``local`` to ``uri`` (keys keep relative paths)."""
    bucket, prefix = split_s3_uri(uri)
    client = s3_client()
    root = Path(local)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(root).as_posix()}" if prefix else path.relative_to(root).as_posix()
        client.upload_file(str(path), bucket, key)


def download_dir(uri: str, local: str | Path) -> bool:
    """Mirror ``uri`` into ``local``; returns False when nothing is stored there."""
    bucket, prefix = split_s3_uri(uri)
    client = s3_client()
    root = Path(local)
    found = False
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :] if prefix else obj["Key"]
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(dest))
            found = True
    return found
