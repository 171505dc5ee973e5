"""The demo's training step against the real stack: the default model (re-ranking head included)
is trained, registered with its served metrics, promoted and answered by the model server."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from genrec.config import Settings
from genrec.data import SynthConfig, generate_synthetic
from genrec.demo import Demo
from genrec.pipelines.seed import dataset_items
from genrec.serving.client import ModelClient
from genrec.stores.catalog_repo import CatalogRepo
from genrec.stores.model_registry import ModelRegistry
from genrec.stores.postgres import make_pool
from tests.helpers import QUICK_TRAIN

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_the_demo_trains_registers_and_serves_the_default_model(stack: Settings) -> None:
    """A head model's test report also holds its beam's own order (a nested dict): the demo registers
    the served order's metrics and the model server answers with the new version (it crashed on the
    nested dict once the head was the default)."""
    ds = generate_synthetic(SynthConfig(n_items=60, n_users=80, seed=21))
    pool = make_pool(stack)
    try:
        CatalogRepo(pool).upsert_many(dataset_items(ds))
        out = io.StringIO()
        version = Demo(stack, Console(file=out), training=QUICK_TRAIN).train_and_promote(ds)
        registered = ModelRegistry(pool).get(version)
    finally:
        pool.close()
    assert registered is not None and registered.status == "production"
    assert {"recall@10", "ndcg@10"} <= registered.metrics.keys()
    assert all(isinstance(v, int | float) for v in registered.metrics.values()), registered.metrics
    assert "test metrics" in out.getvalue()
    assert ModelClient(stack).status().get("version") == version
