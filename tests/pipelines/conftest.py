"""Fixtures for the batch pipelines: one SparkSession, tiny training configs, scratch stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql
from pydantic import SecretStr

from genrec.config import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole run (starting one costs ~8 s)."""
    import torch

    from genrec.pipelines.spark import get_spark

    torch.set_num_threads(2)
    # Tiny data: one shuffle partition and no adaptive re-planning is ~2x faster per job.
    session = get_spark("genrec-tests", extra_conf={"spark.sql.shuffle.partitions": "1",
                                                    "spark.sql.adaptive.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def scratch(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The stack's servers with a private database, artifacts dir and Milvus collection.

    The registry's single production slot, the serving pointer file and the catalogue are
    then this module's alone; S3 keys are unique per version anyway.
    """
    from genrec.stores.milvus import ItemVectorIndex
    from genrec.stores.postgres import connect, migrate

    uid = uuid.uuid4().hex[:8]
    name = f"pipeline_{uid}"
    with connect(stack, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    s = stack.model_copy(deep=True)
    s.postgres.dsn = SecretStr(stack.postgres.dsn.get_secret_value().rsplit("/", 1)[0] + f"/{name}")
    s.model.artifacts_dir = Path(tmp_path_factory.mktemp("pipeline-artifacts"))
    s.milvus.collection = f"pipeline_{uid}"
    migrate(s)
    yield s
    index = ItemVectorIndex(s)
    try:
        if index.client.has_collection(s.milvus.collection):
            index.drop()
    finally:
        index.close()
    with connect(stack, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
