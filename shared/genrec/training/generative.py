"""End-to-end training of the generative retriever (and the evaluation helpers the
benchmark shares): split -> item vectors -> Semantic IDs -> transformer -> bundle."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genrec.data.schema import InteractionDataset
from genrec.data.splits import (
    PAD_ITEM,
    LeaveOneOutSplit,
    leave_one_out,
    pad_histories,
    sequence_examples,
    sliding_window_examples,
)
from genrec.embeddings.build import build_item_embeddings
from genrec.evaluation.evaluate import evaluate_recommender
from genrec.evaluation.metrics import metrics_from_ranks, ndcg_gains, target_ranks
from genrec.model.code_table import CodeTable
from genrec.model.generative import GenerativeRecommender, TigerModel, user_bucket
from genrec.model.rerank import rerank
from genrec.semantic.tokenizer import SemanticIdTokenizer
from genrec.training.bundle import TrainedBundle
from genrec.training.config import Batching, TrainConfig
from genrec.training.loop import MONITOR, LossFn, fit, history_seconds, seed_everything


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


@dataclass
class TrainingExamples:
    """What the model trains on: ``histories [M, L]`` (left-padded) and their ``targets`` (``[M]``,
    the next item of a window; or, for the causal encoder, ``[M, L]``, the next item of each
    position, pad where that row does not train it), the row's user bucket, and about how many
    targets a step trains (``batch_size``), whichever encoder."""

    histories: np.ndarray
    targets: np.ndarray
    users: np.ndarray
    batch_size: int
    batching: Batching = "random"  # how an epoch's rows make batches (OptimConfig.batches, epoch_batches)
    lengths: np.ndarray = field(init=False)  # each row's real items
    row_targets: np.ndarray = field(init=False)  # each row's trained targets

    def __post_init__(self) -> None:
        self.lengths = (self.histories != PAD_ITEM).sum(1)
        trained = self.targets != PAD_ITEM
        self.row_targets = trained.sum(1) if trained.ndim == 2 else trained.astype(np.int64)

    @property
    def n_targets(self) -> int:
        return int(self.row_targets.sum())

    def steps_per_epoch(self) -> int:
        return -(-self.n_targets // self.batch_size)

    def epoch_batches(self, seed: int, epoch: int) -> list[np.ndarray]:
        """The row indices of each batch of an epoch, the same for a seed and epoch (a resumed run sees
        the same order): rows in a fresh random order each epoch, cut into batches of about ``batch_size``
        targets each. ``batching="by_length"``: rows of about one history length together (in random order within
        a length), so a batch is padded little: most histories are short (on Amazon Beauty a row holds 6 of
        its 20 items in the mean) and a random batch pads every row to its longest. The batches come in
        random order either way."""
        steps = self.steps_per_epoch()
        if not steps:
            return []
        rng = np.random.default_rng([seed, epoch])
        rows = rng.permutation(len(self.lengths))
        if self.batching == "by_length":
            rows = rows[np.argsort(self.lengths[rows], kind="stable")]
        done = np.cumsum(self.row_targets[rows])
        cuts = np.searchsorted(done, np.arange(1, steps) * (done[-1] / steps), side="right")
        batches = [b for b in np.split(rows, cuts) if len(b)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``rows`` as a batch (histories, targets, users) on ``device``, without the columns where
        every row is padding (both encoders place an item by its distance from the row's end)."""
        h, t, u = (torch.as_tensor(a[rows]) for a in (self.histories, self.targets, self.users))
        first = int((h != PAD_ITEM).any(0).int().argmax())
        h = h[:, first:]
        if t.dim() == 2:
            t = t[:, first:]
        return tuple(x.to(device, non_blocking=True) for x in (h, t, u))

    def batches(self, seed: int, device: torch.device) -> Any:
        """``batches(epoch)``: the epoch's batches (``epoch_batches``) on ``device``."""
        return lambda epoch: (self.batch(rows, device) for rows in self.epoch_batches(seed, epoch))


# The share of a causal row that a long sequence's next row re-reads as context: each trained
# position then has at least this share of a full history; the rest of the row is new targets.
ROW_CONTEXT = 0.5


def training_examples(split: LeaveOneOutSplit, cfg: TrainConfig) -> TrainingExamples:
    """The split's training sequences as examples for ``cfg.model``'s encoder: every prefix of
    every sequence, as a window (bidirectional) or as a position of a sequence row (causal)."""
    if cfg.model.encoder == "causal":
        hist, targets, owner = sequence_examples(split.train, cfg.max_history, int(ROW_CONTEXT * cfg.max_history))
    else:
        hist, targets, owner = sliding_window_examples(split.train, cfg.max_history)
    users = user_buckets(split, cfg.model.user_buckets)[owner]
    return TrainingExamples(hist, targets, users, cfg.optim.batch_size, cfg.optim.batches)


def _fit_or_resume_tokenizer(
    cfg: TrainConfig, vectors: np.ndarray, progress: bool, device: torch.device
) -> tuple[SemanticIdTokenizer, np.ndarray]:
    """Fit the tokenizer, or reload it from a local checkpoint dir when resuming (or from
    ``init_from`` when warm-starting).

    A resumed model must see exactly the codes it was trained with; re-fitting could
    differ in the last float bit (thread counts), so the fitted tokenizer is checkpointed.
    """
    ckpt = cfg.checkpoint_dir
    tok_dir = Path(ckpt) / "tokenizer" if ckpt and not ckpt.startswith("s3://") else None
    init = _init_files(cfg.init_from)
    sources = [d for d in (tok_dir, init[0].parent / "tokenizer" if init else None) if d]
    for src in sources:
        if (src / "tokenizer.pt").is_file():
            tokenizer = SemanticIdTokenizer.load(src)
            if tokenizer.codes is not None and len(tokenizer.codes) == len(vectors):
                if tok_dir is not None and src != tok_dir:
                    tokenizer.save(tok_dir)
                return tokenizer, tokenizer.codes
            if src != tok_dir:
                raise ValueError(f"init_from {cfg.init_from}: its tokenizer was fitted on another catalogue")
    tokenizer = SemanticIdTokenizer(cfg.tokenizer)
    codes = tokenizer.fit(vectors, progress=progress, device=device)
    if tok_dir is not None:
        tokenizer.save(tok_dir)
    return tokenizer, codes


def _init_files(init_from: str | list[str] | None) -> list[Path]:
    """The checkpoint files a warm start reads: a folder means its best.pt."""
    if not init_from:
        return []
    paths = [Path(p) for p in ([init_from] if isinstance(init_from, str) else init_from)]
    return [p / "best.pt" if p.is_dir() else p for p in paths]


def _warm_start(model: TigerModel, init_from: str | list[str]) -> dict[str, Any]:
    """Load (the average of) an earlier run's weights by name; report what was loaded."""
    files = _init_files(init_from)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"init_from: no checkpoint at {f} (a folder needs a best.pt)")
    states = [torch.load(f, map_location="cpu", weights_only=False) for f in files]
    # Averaging checkpoints of one run (e.g. its best and last epochs) smooths the weights.
    weights = {
        k: torch.stack([s["model"][k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
        for k, v in states[0]["model"].items()
    }
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise ValueError(f"init_from: weights this model does not have: {unexpected[:5]}")
    history = max((s.get("history", []) for s in states), key=len)
    # The parts of the generator or re-ranker the source lacks (e.g. the re-ranker's towers).
    parameters = dict(model.named_parameters())
    new = sorted({k.split(".")[1] for k in missing if k in parameters})
    return {
        "from": [str(f) for f in files], "new_parameters": new,
        "source_epochs": len(history),
        "source_train_seconds": round(history_seconds(history), 1),
    }


def new_model(
    cfg: TrainConfig, level_sizes: Sequence[int], n_items: int, content: Callable[[], torch.Tensor]
) -> TigerModel:
    """The model to train on a catalogue of ``n_items``: with item IDs, one ID row per item known now;
    with ``id_content``, their content vectors ``content() [n_items, E]`` attached (``Reranker.attach_content``)."""
    model = TigerModel.for_catalogue(cfg.model, level_sizes, n_items)
    if model.reranker is not None and model.reranker.id_items and cfg.model.rerank.id_content:
        model.reranker.attach_content(content())
    return model


def generative_loss(item_codes: torch.Tensor, user_dropout: float) -> LossFn:
    """The training loss of a batch ``(histories, target items, user buckets)``."""

    def loss_fn(m: TigerModel, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h, tgt, u = batch
        # Anonymous-user dropout: the exported graph may be called without user ids.
        u = torch.where(torch.rand(u.shape, device=u.device) < user_dropout, torch.zeros_like(u), u)
        return m.loss(h, tgt, item_codes, u)

    return loss_fn


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
    tokenizer, codes = _fit_or_resume_tokenizer(cfg, emb.vectors, progress, device)
    t_tok = time.perf_counter()
    table = CodeTable(torch.as_tensor(codes), tokenizer.level_sizes)
    torch.manual_seed(cfg.seed)
    model = new_model(cfg, table.level_sizes, table.n_items, lambda: torch.as_tensor(emb.vectors))
    warm = _warm_start(model, cfg.init_from) if cfg.init_from else None
    if warm and progress:
        print(f"warm start from {', '.join(warm['from'])}; new: {', '.join(warm['new_parameters']) or 'none'}")
    model = model.to(device)

    examples = training_examples(split, cfg)
    item_codes = table.item_codes.to(device)

    loss_fn = generative_loss(item_codes, cfg.model.user_dropout)
    sub = eval_subset(len(split.user_ids), cfg.optim.eval_users, cfg.seed)
    val_hist = pad_histories([split.valid_histories[i] for i in sub], cfg.max_history)
    val_tgt = split.valid_targets[sub]
    val_users = user_buckets(split, cfg.model.user_buckets)[sub]

    def validate() -> dict[str, float]:
        rec = GenerativeRecommender(model, table.to(device), top_k=10, beam_width=cfg.val_beam_width).eval()
        if model.reranker is not None:
            return tune_rerank_weight(rec, val_hist, val_tgt, val_users, cfg.optim.eval_batch_size, device,
                                      prior=cfg.model.rerank.weight)
        return evaluate_recommender(
            lambda h, u: rec(h, u), val_hist, val_tgt, val_users, batch_size=cfg.optim.eval_batch_size,
            device=device,
        )

    result = fit(
        model, examples.batches(cfg.seed, device), examples.steps_per_epoch(), loss_fn, validate, cfg.optim,
        device, checkpoint_dir=cfg.checkpoint_dir, metrics_path=cfg.metrics_path,
        name="genrec-warm" if warm else "genrec",
        progress=progress,
    )
    model = model.cpu().eval()
    model.generator.trained_items = table.n_items  # items added from now on are fresh to the decoder
    if model.reranker is not None:
        model.reranker.fold_content()  # a saved head is one without it: the artifact and serving are unchanged
        model.reranker.set_tower_regions(table.item_codes[: model.reranker.id_items], table.level_sizes[0])
        if "rerank_weight" in result.best_metrics:
            model.reranker.set_weight(result.best_metrics["rerank_weight"])  # the best epoch's tuned weight
    bundle = TrainedBundle(
        config=cfg, tokenizer=tokenizer, model=model, item_index=split.item_index, code_table=table,
        embedding_source=emb.source, collab_from_text=emb.collab_from_text,
        report={
            "embeddings": emb.report,
            "tokenizer": tokenizer.report(codes),
            "train_examples": examples.n_targets,
            "best_epoch": result.best_epoch,
            "resumed_after_epoch": result.resumed_after_epoch,
            "stopped_by": result.stopped_by,
            "steps_per_epoch": result.steps_per_epoch,
            "flops_per_step": result.flops_per_step,
            "warm_start": warm,
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
        result = evaluate_bundle(bundle, split, device=device)
        bundle.report["test"] = result.served
        if result.generative_order is not None:
            bundle.report["test_generative_order"] = result.generative_order
    if out_dir is not None:
        bundle.save(out_dir)
    return bundle


# Weights of the re-ranker's dense logit tried on validation (0 = beam order alone; up to the dense
# order alone, near enough: the gpu budget's model chose 5, then the grid's top, at every epoch).
RERANK_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 50.0)
# How many standard errors of the paired per-user difference validation needs to move the weight
# off the configured one. The best of 16 noisy weights is biased upward: on MovieLens-100K's 943
# validation users the plain maximum picked 0.2 for one seed, 1.4 standard errors above 5, where
# test gave 0.083 NDCG@10 against 0.095 (bench/results/quality-weight-choice-s30.md).
RERANK_EVIDENCE = 2.0


@torch.no_grad()
def beam_parts(
    rec: GenerativeRecommender, histories: np.ndarray, users: np.ndarray, batch_size: int,
    device: torch.device | str, progress: bool = False, desc: str = "evaluate",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every row's candidates (``TigerModel.scored_beam``: items, generative log-probs, dense logits), on CPU."""
    parts = []
    for s in tqdm(range(0, len(histories), batch_size), desc=desc, disable=not progress, leave=False):
        h = torch.as_tensor(histories[s : s + batch_size], device=device)
        u = torch.as_tensor(users[s : s + batch_size], device=device)
        parts.append([t.cpu() for t in rec.beam_with_dense_scores(h, u)])
    items, generative, dense = (torch.cat(p) for p in zip(*parts, strict=True))
    return items, generative, dense


def metrics_at_weight(
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor], targets: np.ndarray, weight: float
) -> dict[str, float]:
    """Recall/NDCG@{5,10} of the beams ordered by ``generative + weight * dense``."""
    top, _ = rerank(*parts, weight, 10)
    return {**metrics_from_ranks(target_ranks(top.numpy(), targets)), "users": len(targets)}


def tune_rerank_weight(
    rec: GenerativeRecommender, histories: np.ndarray, targets: np.ndarray, users: np.ndarray,
    batch_size: int, device: torch.device, prior: float, weights: tuple[float, ...] = RERANK_WEIGHTS,
) -> dict[str, float]:
    """Validation metrics at the re-ranking weight ``choose_weight`` keeps (reported as
    ``rerank_weight``): one beam search per user, then every weight re-sorts the same beam. Also
    the NDCG@10 of either score alone on the same candidates (``generative_`` and ``head_``), so an
    epoch's history shows which part gains or overfits."""
    parts = beam_parts(rec, histories, users, batch_size, device)
    grid = sorted({0.0, *weights, prior})  # 0: the generative order alone
    ranks = [target_ranks(rerank(*parts, w, 10)[0].numpy(), targets) for w in grid]
    gains = np.stack([ndcg_gains(r, 10) for r in ranks])
    pick = choose_weight(gains, grid.index(prior))
    items, generative, dense = parts
    head_alone = (items, torch.where(torch.isfinite(generative), 0.0, generative), dense)  # empty slots stay last
    return {**metrics_from_ranks(ranks[pick]), "users": len(targets), "rerank_weight": grid[pick],
            f"generative_{MONITOR}": float(gains[grid.index(0.0)].mean()),
            f"head_{MONITOR}": metrics_at_weight(head_alone, targets, 1.0)[MONITOR]}


def choose_weight(gains: np.ndarray, prior: int, evidence: float = RERANK_EVIDENCE) -> int:
    """The grid position to keep, from per-user NDCG ``gains [weights, users]`` (weights in ascending
    order): the weight nearest the ``prior`` one (in grid steps; ties to the better mean) among those
    validation cannot tell from the best, i.e. less than ``evidence`` paired standard errors below it.
    A large validation set moves the weight wherever it shows a gain; a small one keeps the prior."""
    if gains.shape[1] < 2:  # no spread to read: no evidence
        return prior
    means = gains.mean(1)
    diff = gains[means.argmax()] - gains
    stderr = diff.std(1, ddof=1) / np.sqrt(gains.shape[1])
    tied = np.flatnonzero(diff.mean(1) <= evidence * stderr)
    return int(min(tied, key=lambda i: (abs(i - prior), -means[i])))


@dataclass(frozen=True)
class EvaluationResult:
    """Test metrics of the served order, the final beam's width they were measured at, and for a model
    with a re-ranker the same candidates' metrics in generative order (from the same search)."""

    served: dict[str, float]
    beam_width: int
    generative_order: dict[str, float] | None = None


def evaluate_bundle(
    bundle: TrainedBundle, split: LeaveOneOutSplit, beam_width: int | None = None,
    device: torch.device | str = "cpu", users_limit: int | None = None, progress: bool = False,
) -> EvaluationResult:
    """Test-set Recall/NDCG@{5,10} with full-catalogue constrained decoding."""
    cfg = bundle.config
    sub = eval_subset(len(split.user_ids), users_limit, cfg.seed)
    hist = pad_histories([split.test_histories[i] for i in sub], cfg.max_history)
    users, targets = user_buckets(split, cfg.model.user_buckets)[sub], split.test_targets[sub]
    return evaluate_bundle_rows(bundle, hist, targets, users, beam_width, device, progress)


def evaluate_bundle_rows(
    bundle: TrainedBundle, histories: np.ndarray, targets: np.ndarray, users: np.ndarray,
    beam_width: int | None = None, device: torch.device | str = "cpu", progress: bool = False,
) -> EvaluationResult:
    """``evaluate_bundle`` on given rows: padded ``histories`` and ``targets`` in the bundle's item index."""
    cfg = bundle.config
    rec = evaluation_recommender(bundle, beam_width, device)
    batch = max(16, cfg.optim.eval_batch_size // 2)
    if bundle.model.reranker is not None:
        parts = beam_parts(rec, histories, users, batch, device, progress=progress, desc="test")
        result = EvaluationResult(metrics_at_weight(parts, targets, bundle.model.reranker.weight), rec.beam_width,
                                  metrics_at_weight(parts, targets, 0.0))
    else:
        result = EvaluationResult(evaluate_recommender(lambda h, u: rec(h, u), histories, targets, users,
                                                       batch_size=batch, device=device, progress=progress,
                                                       desc="test"), rec.beam_width)
    bundle.model.cpu()
    return result


def evaluation_recommender(
    bundle: TrainedBundle, beam_width: int | None = None, device: torch.device | str = "cpu"
) -> GenerativeRecommender:
    """What test metrics are measured with: the top 10-50 of the whole catalogue, the final beam
    ``beam_width`` wide (default: the config's ``test_beam_width``, else the width the model serves)."""
    cfg = bundle.config
    return GenerativeRecommender(
        bundle.model.to(device), bundle.code_table.to(device), top_k=max(10, min(cfg.top_k, 50)),
        beam_width=beam_width or cfg.test_beam_width,
    ).eval()
