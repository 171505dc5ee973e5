"""Local staging of s3:// inputs and outputs for Spark in local mode.

Local Spark has no hadoop-aws jars (they cannot be fetched here), so an s3:// input is
downloaded to a temporary folder first and an s3:// output is written locally, then
uploaded. On a cluster with hadoop-aws, pass ``direct_s3=True`` (``--direct-s3``) and
Spark reads/writes ``s3a://`` itself (see ``genrec.pipelines.spark.s3a_conf``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genrec.config import Settings, get_settings
from genrec.stores import objects


def is_s3(path: str | Path) -> bool:
    return str(path).startswith("s3://")


def to_s3a(uri: str) -> str:
    return "s3a://" + uri[len("s3://"):] if is_s3(uri) else uri


@contextmanager
def staged_input(uri: str | Path, s: Settings | None = None, direct_s3: bool = False) -> Iterator[str]:
    """A path Spark can read for ``uri`` (the local path itself, or a downloaded copy)."""
    uri = str(uri)
    if not is_s3(uri):
        yield str(Path(uri).resolve())
        return
    if direct_s3:
        yield to_s3a(uri)
        return
    tmp = Path(tempfile.mkdtemp(prefix="genrec-stage-in-"))
    try:
        objects.download_dir(uri, tmp, s or get_settings())
        yield str(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_output(uri: str | Path, s: Settings | None = None, direct_s3: bool = False) -> Iterator[Path | str]:
    """Where to write for ``uri``; an s3:// target is uploaded when the block succeeds.

    The old objects under the prefix are deleted first so a rerun leaves no stale parts.
    """
    uri = str(uri)
    if not is_s3(uri):
        path = Path(uri).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    if direct_s3:
        yield to_s3a(uri)
        return
    s = s or get_settings()
    tmp = Path(tempfile.mkdtemp(prefix="genrec-stage-out-"))
    try:
        yield tmp
        objects.delete_prefix(uri.rstrip("/") + "/", s)
        # Skip Spark's checksum and marker files: they mean nothing outside Hadoop.
        for path in list(tmp.rglob("*")):
            if path.is_file() and path.name.startswith("."):
                path.unlink()
        objects.upload_dir(tmp, uri.rstrip("/"), s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
