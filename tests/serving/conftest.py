"""Serving fixtures: a small real artifact (TrainedBundle layout) and the real local model
server (Triton from .venv-serving) started through the dev stack, following the pointer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from genrec.config import Settings, get_settings
from genrec.devstack import stack as devstack

SERVER_READY_TIMEOUT_S = 240.0  # torch import in Triton's stub; minutes on a loaded 2-core box
N_ITEMS = 150
TINY_MODEL = {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64, "dropout": 0.0,
              "user_buckets": 7, "max_history": 8, "rerank": None}  # the generator alone unless a fixture adds the head


def make_bundle(out: Path, seed: int = 0, id_items: int = 0, **model: object):
    """A TrainedBundle saved by its own ``save`` (real tokenizer, untrained transformer):
    exactly the files `genrec train` writes, in a second instead of minutes. ``id_items``:
    items with (random, as if trained) ID vectors in the re-ranker."""
    from genrec.data.splits import ItemIndex
    from genrec.model import CodeTable, GenerativeConfig, TigerModel
    from genrec.semantic.tokenizer import SemanticIdTokenizer, TokenizerConfig
    from genrec.training import TrainConfig, TrainedBundle

    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(N_ITEMS, 16)).astype(np.float32)
    tok = SemanticIdTokenizer(TokenizerConfig(method="rqkmeans", levels=2, codebook_size=8, latent_dim=16,
                                              disambiguation_size=16, kmeans_iters=5, seed=seed))
    codes = tok.fit(emb, progress=False)
    model_cfg = {**TINY_MODEL, **model}
    cfg = TrainConfig.model_validate({"max_history": 8, "top_k": 50, "model": model_cfg})
    torch.manual_seed(seed)
    model = TigerModel(GenerativeConfig.model_validate(model_cfg), tok.level_sizes, id_items=id_items).eval()
    if id_items:  # "trained" ID vectors (they start at zero)
        torch.nn.init.normal_(model.reranker.item_id_emb.weight)
    # As training sets it: items fed later (or past the ID table) are fresh to the decoder.
    model.generator.trained_items = id_items or N_ITEMS
    bundle = TrainedBundle(config=cfg, tokenizer=tok, model=model,
                           item_index=ItemIndex(np.asarray([f"sku-{i}" for i in range(N_ITEMS)], dtype=object)),
                           code_table=CodeTable(torch.as_tensor(codes), tok.level_sizes),
                           embedding_source="interactions")
    bundle.save(out)
    return bundle


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serving-artifacts") / "v1"
    make_bundle(out, seed=0)
    return out


@pytest.fixture(scope="session")
def rerank_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact whose model re-ranks its final beam with a dense head, with ID vectors for
    the first 140 of its 150 items (the rest stand for items added after training); its encoder is
    the bidirectional one (artifacts trained before the causal encoder), so both are served."""
    out = tmp_path_factory.mktemp("serving-artifacts") / "rerank"
    make_bundle(out, seed=2, id_items=140, rerank={"weight": 0.5, "item_ids": True, "user_state": "encoder",
                                                         "catalogue_top": 0}, encoder="bidirectional")
    return out


@pytest.fixture(scope="session")
def history_rerank_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As ``rerank_bundle_dir``, with the causal encoder and a re-ranker that reads the history
    through its own tower (``user_state = "history"``) and adds its own best items of the whole
    catalogue to the beam (``catalogue_top``), as the quality budgets train it."""
    out = tmp_path_factory.mktemp("serving-artifacts") / "rerank-history"
    make_bundle(out, seed=3, id_items=140, rerank={"weight": 0.5, "item_ids": True, "user_state": "history",
                                                         "catalogue_top": 20})
    return out


@pytest.fixture(scope="session")
def id_tower_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As ``history_rerank_bundle_dir``, with an ID tower beside the head (``id_tower``): user and item
    vectors wider than the model, the tower's columns 0 for the items past the ID table."""
    out = tmp_path_factory.mktemp("serving-artifacts") / "id-tower"
    make_bundle(out, seed=4, id_items=140, rerank={"weight": 0.5, "item_ids": True, "user_state": "history",
                                                         "catalogue_top": 20, "id_tower": 8})
    return out


@pytest.fixture(scope="session")
def bundle_dir_v2(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serving-artifacts") / "v2"
    make_bundle(out, seed=1)
    return out


def wait_ready(client, version: str | None = None, timeout_s: float = SERVER_READY_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    info: dict = {}
    while time.monotonic() < deadline:
        info = client.status()
        if info.get("ready") and (version is None or info.get("version") == version):
            return info
        time.sleep(0.5)
    raise TimeoutError(f"model server not ready with version {version}: {info}")


@pytest.fixture(scope="session")
def model_server(stack_env: dict[str, str], bundle_dir: Path) -> Iterator[dict]:
    """The stack's model server (plus its Redis and S3), first probed *without* an artifact,
    then pointed at ``bundle_dir``. Yields settings and the probe answer."""
    from genrec.serving import keys
    from genrec.serving.artifact import pointer_file, set_current
    from genrec.serving.client import ModelClient
    from genrec.stores.hot_state import redis_client

    s: Settings = get_settings()
    s.stack.start_timeout_s = max(s.stack.start_timeout_s, 180.0)
    devstack.up(s, ["redis", "s3"], on_progress=lambda _m: None)
    r = redis_client(s)
    # Earlier tests in this session may have promoted a model, and a running server keeps
    # serving its last model: clear both pointers and start the server afresh.
    r.delete(keys.CURRENT)
    pointer_file(s).unlink(missing_ok=True)
    devstack.down(s, ["model-server"], on_progress=lambda _m: None)
    devstack.up(s, ["model-server"], on_progress=lambda _m: None)
    client = ModelClient(s, timeout_s=30.0)
    # Without a promoted artifact the server is up but answers 503 with a reason.
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    before = client.status()
    while "no trained artifact" not in str(before.get("error")) and time.monotonic() < deadline:
        time.sleep(0.5)  # first "starting" (torch loading), then "no trained artifact"
        before = client.status()
    art = set_current(bundle_dir, s, redis_client=r)
    wait_ready(client, art.version)
    try:
        yield {"settings": s, "before_promotion": before, "artifact": art, "redis": r}
    finally:
        # Session end: nothing else runs now, so its dependencies can go too (the full-stack
        # fixture, if used, stops whatever is left).
        devstack.down(s, ["model-server", "redis", "s3"], on_progress=lambda _m: None)
