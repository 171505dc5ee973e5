"""Object storage on the real SeaweedFS S3 server."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from genrec.config import Settings
from genrec.stores import objects

pytestmark = pytest.mark.stack


def test_multipart_upload_round_trip(stack: Settings, tmp_path: Path, uid: str) -> None:
    s = stack.model_copy(deep=True)
    s.s3.multipart_threshold_mb = 1  # parts of 5 MiB (the S3 minimum); 11 MiB -> 3 parts
    src = tmp_path / "big.bin"
    payload = os.urandom(11 * 1024 * 1024)
    src.write_bytes(payload)
    uri = objects.object_uri(f"tests/{uid}/big.bin", s)
    objects.upload_file(src, uri, s)

    bucket, key = objects.split_uri(uri)
    etag = objects.s3_client(s).head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert etag.endswith("-3"), f"expected a 3-part multipart upload, ETag {etag}"
    out = objects.download_file(uri, tmp_path / "copy.bin", s)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(payload).digest()


def test_bytes_json_exists_list_delete(stack: Settings, uid: str) -> None:
    base = objects.object_uri(f"tests/{uid}", stack)
    objects.put_bytes(f"{base}/a.bin", b"\x00\x01", stack)
    objects.put_json(f"{base}/sub/meta.json", {"version": "v1", "metrics": {"ndcg": 0.3}}, stack)
    objects.put_bytes(f"{base}x/not-under-prefix", b"", stack)
    assert objects.get_bytes(f"{base}/a.bin", stack) == b"\x00\x01"
    assert objects.get_json(f"{base}/sub/meta.json", stack) == {"version": "v1", "metrics": {"ndcg": 0.3}}
    assert objects.exists(f"{base}/a.bin", stack) and not objects.exists(f"{base}/missing", stack)
    assert objects.list_uris(f"{base}/", stack) == [f"{base}/a.bin", f"{base}/sub/meta.json"]

    objects.delete(f"{base}/a.bin", stack)
    objects.delete(f"{base}/a.bin", stack)  # deleting twice is fine, as in S3
    assert not objects.exists(f"{base}/a.bin", stack)
    assert objects.delete_prefix(f"{base}/", stack) == 1
    assert objects.list_uris(f"{base}/", stack) == []
    assert objects.list_uris(f"{base}x/", stack) == [f"{base}x/not-under-prefix"]
    objects.delete_prefix(f"{base}x/", stack)


def test_dir_round_trip(stack: Settings, tmp_path: Path, uid: str) -> None:
    src = tmp_path / "model"
    (src / "nested").mkdir(parents=True)
    (src / "weights.pt").write_bytes(b"w" * 1000)
    (src / "nested" / "config.json").write_text("{}")
    uri = objects.object_uri(f"tests/{uid}/model", stack)
    assert len(objects.upload_dir(src, uri, stack)) == 2
    dst = objects.download_dir(uri, tmp_path / "back", stack)
    assert (dst / "weights.pt").read_bytes() == b"w" * 1000 and (dst / "nested" / "config.json").read_text() == "{}"
    objects.delete_prefix(uri + "/", stack)


def test_s3_uri_parsing() -> None:
    assert objects.split_uri("s3://b/k/x.bin") == ("b", "k/x.bin")
    assert objects.is_s3_uri("s3://b/k") and not objects.is_s3_uri("/tmp/x")
    with pytest.raises(ValueError):
        objects.split_uri("http://b/k")



@pytest.mark.parametrize("rel", ["../escaped.txt", "sub/../../escaped.txt", "/tmp/escaped.txt", ".", "sub/.."])
def test_a_key_that_would_land_outside_the_folder_is_refused(tmp_path: Path, rel: str) -> None:
    # SeaweedFS itself refuses keys with ".." and collapses "//" (so no such object exists in the
    # local stack), but AWS S3 stores any key: whoever can write to the bucket chooses them.
    with pytest.raises(objects.UnsafeKey, match=re.escape(repr(rel))):
        objects.local_path(tmp_path / "target", rel)
    assert objects.local_path(tmp_path / "target", "sub/../model.pt") == (tmp_path / "target" / "model.pt").resolve()

