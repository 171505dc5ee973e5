"""End-to-end training of the generative retriever (and the evaluation helpers the
benchmark shares): split -> item vectors -> Semantic IDs -> transformer -> bundle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data.schema import InteractionDataset
from genrec.data.splits import LeaveOneOutSplit, leave_one_out, pad_histories, sliding_window_examples
from genrec.embeddings.build import build_item_embeddings
from genrec.evaluation.evaluate import evaluate_recommender
from genrec.model.code_table import CodeTable
from genrec.model.generative import GenerativeRecommender, TigerModel, user_bucket
from genrec.semantic.tokenizer import SemanticIdTokenizer
from genrec.training.bundle import TrainedBundle
from genrec.training.config import TrainConfig
from genrec.training.loop import fit, seed_everything


def setup_torch(cfg: TrainConfig) -> torch.device:
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return cfg.torch_device()


def eval_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """A fixed random subset of rows (all rows when ``limit`` is None or large)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def user_buckets(split: LeaveOneOutSplit, buckets: int) -> np.ndarray:
    return np.asarray([user_bucket(u, buckets) for u in split.user_ids], dtype=np.int64)


def _batches(
    tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int, device: torch.device
) -> Any:
    n = tensors[0].shape[0]

    def make(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            yield tuple(t[idx].to(device, non_blocking=True) for t in tensors)

    return make


def _fit_or_resume_tokenizer(
    cfg: TrainConfig, vectors: np.ndarray, progress: bool
) -> tuple[SemanticIdTokenizer, np.ndarray]:
    """Fit the tokenizer, or reload it from a local checkpoint dir when resuming.

    A resumed model must see exactly the codes it was trained with; re-fitting could
    differ in the last float bit (thread counts), so the fitted tokenizer is checkpointed.
    """
    ckpt = cfg.checkpoint_dir
    tok_dir = Path(ckpt) / "tokenizer" if ckpt and not ckpt.startswith("s3://") else None
    if tok_dir is not None and (tok_dir / "tokenizer.pt").is_file():
        tokenizer = SemanticIdTokenizer.load(tok_dir)
        if tokenizer.codes is not None and len(tokenizer.codes) == len(vectors):
            return tokenizer, tokenizer.codes
    tokenizer = SemanticIdTokenizer(cfg.tokenizer)
    codes = tokenizer.fit(vectors, progress=progress)
    if tok_dir is not None:
        tokenizer.save(tok_dir)
    return tokenizer, codes


def train_generative(
    dataset: InteractionDataset,
    cfg: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    split: LeaveOneOutSplit | None = None,
    progress: bool = True,
    evaluate_test: bool = True,
) -> TrainedBundle:
    """Train tokenizer + model on the leave-one-out train part; returns (and saves) a bundle.

    ``bundle.report`` holds the embedding choice, tokenizer statistics, training history,
    validation metrics and, with ``evaluate_test``, test metrics.
    """
    cfg = cfg or TrainConfig()
    device = setup_torch(cfg)
    t0 = time.perf_counter()
    split = split or leave_one_out(dataset, cfg.max_history)
    train_seqs = split.train
    emb = build_item_embeddings(dataset.items, train_seqs, cfg.embeddings, progress=progress)
    t_emb = time.perf_counter()
    tokenizer, codes = _fit_or_resume_tokenizer(cfg, emb.vectors, progress)
    t_tok = time.perf_counter()
    table = CodeTable(torch.as_tensor(codes), tokenizer.level_sizes)
    torch.manual_seed(cfg.seed)
    model = TigerModel(cfg.model, table.level_sizes).to(device)

    hist, targets, owner = sliding_window_examples(train_seqs, cfg.max_history)
    users = user_buckets(split, cfg.model.user_buckets)[owner]
    item_codes = table.item_codes.to(device)
    tensors = (torch.as_tensor(hist), torch.as_tensor(targets), torch.as_tensor(users))
    steps = -(-len(targets) // cfg.optim.batch_size)

    def loss_fn(m: TigerModel, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h, tgt, u = batch
        # Anonymous-user dropout: the exported graph may be called without user ids.
        u = torch.where(torch.rand(u.shape, device=u.device) < cfg.model.user_dropout, torch.zeros_like(u), u)
        return m.loss(h, item_codes[tgt], item_codes, u)

    sub = eval_subset(len(split.user_ids), cfg.optim.eval_users, cfg.seed)
    val_hist = pad_histories([split.valid_histories[i] for i in sub], cfg.max_history)
    val_tgt = split.valid_targets[sub]
    val_users = user_buckets(split, cfg.model.user_buckets)[sub]

    def validate() -> dict[str, float]:
        rec = GenerativeRecommender(model, table.to(device), top_k=10, beam_width=cfg.val_beam_width).eval()
        return evaluate_recommender(
            lambda h, u: rec(h, u), val_hist, val_tgt, val_users, batch_size=cfg.optim.eval_batch_size,
            device=device,
        )

    result = fit(
        model, _batches(tensors, cfg.optim.batch_size, cfg.seed, device), steps, loss_fn, validate, cfg.optim,
        device, checkpoint_dir=cfg.checkpoint_dir, metrics_path=cfg.metrics_path, name="genrec",
        progress=progress,
    )
    model = model.cpu().eval()
    bundle = TrainedBundle(
        config=cfg, tokenizer=tokenizer, model=model, item_index=split.item_index, code_table=table,
        embedding_source=emb.source,
        report={
            "embeddings": emb.report,
            "tokenizer": tokenizer.report(codes),
            "train_examples": len(targets),
            "best_epoch": result.best_epoch,
            "resumed_after_epoch": result.resumed_after_epoch,
            "validation": result.best_metrics,
            "history": result.history,
            "seconds": {
                "embeddings": round(t_emb - t0, 1),
                "tokenizer": round(t_tok - t_emb, 1),
                "model": round(result.seconds, 1),
            },
        },
    )
    if evaluate_test:
        bundle.report["test"] = evaluate_bundle(bundle, split, device=device)
    if out_dir is not None:
        bundle.save(out_dir)
    return bundle


def evaluate_bundle(
    bundle: TrainedBundle, split: LeaveOneOutSplit, beam_width: int | None = None,
    device: torch.device | str = "cpu", users_limit: int | None = None, progress: bool = False,
) -> dict[str, float]:
    """Test-set Recall/NDCG@{5,10} with full-catalogue constrained decoding."""
    cfg = bundle.config
    sub = eval_subset(len(split.user_ids), users_limit, cfg.seed)
    rec = GenerativeRecommender(
        bundle.model.to(device), bundle.code_table.to(device), top_k=max(10, min(cfg.top_k, 50)),
        beam_width=beam_width or cfg.test_beam_width,
    ).eval()
    hist = pad_histories([split.test_histories[i] for i in sub], cfg.max_history)
    out = evaluate_recommender(
        lambda h, u: rec(h, u), hist, split.test_targets[sub], user_buckets(split, cfg.model.user_buckets)[sub],
        batch_size=max(16, cfg.optim.eval_batch_size // 2), device=device, progress=progress, desc="test",
    )
    bundle.model.cpu()
    return out
