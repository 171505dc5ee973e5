"""Parity of a serving graph with the eager one: the same items and scores on inputs of several
shapes, on the trained code table and on one extended with items fed since (proving the table is
not baked in). Exported graphs are checked at export, the graph traced at load before it serves."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from genrec.model.code_table import CodeTable
from genrec.serving.graph import TableTensors, example_inputs, extend_table
from genrec.serving.repository import MAX_BATCH_SIZE

GraphFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # the serving graph's signature (a runner's)
PARITY_CASES = ((1, 1, 1), (3, 7, 2), (8, 20, 5), (MAX_BATCH_SIZE, 33, 1))  # (batch, length, excluded)


@dataclass
class ParityCase:
    batch: int
    length: int
    excluded: int
    n_items: int
    item_match: float
    max_abs_diff: float
    inf_mismatch: int


def synthetic_extra_items(table: CodeTable, n: int, seed: int = 0) -> np.ndarray:
    """``n`` code tuples not in ``table`` (stand-ins for cold-start items): first some that give
    each level's busiest prefix more children (``widening_items``), so the extended table's child
    slots are wider than the trained one's, then random ones."""
    rng = np.random.default_rng(seed)
    out = list(widening_items(table, rng))[:n]
    weights = table.base ** np.arange(table.n_levels - 1, -1, -1)
    taken = set(table.item_keys.tolist()) | {int((codes * weights).sum()) for codes in out}
    space = math.prod(table.level_sizes)
    n = min(n, space - table.n_items)
    while len(out) < n:
        codes = np.stack([rng.integers(0, v) for v in table.level_sizes])
        key = int((codes * weights).sum())
        if key not in taken:
            taken.add(key)
            out.append(codes)
    return np.asarray(out, dtype=np.int64).reshape(-1, table.n_levels)


def widening_items(table: CodeTable, rng: np.random.Generator) -> np.ndarray:
    """Per level, a code tuple under that level's busiest prefix with a code it has no child for
    yet (where the vocabulary has room): the table extended with them has a wider fan-out at
    every such level. A graph that baked in the trained table's child slots would miss them."""
    codes = table.item_codes.cpu().numpy()
    out = []
    for level, size in enumerate(table.level_sizes):
        children = np.unique(codes[:, : level + 1], axis=0)  # distinct (prefix, code) pairs
        prefixes, per_prefix = np.unique(children[:, :level], axis=0, return_counts=True)
        if not len(prefixes) or per_prefix.max() >= size:
            continue
        busiest = prefixes[per_prefix.argmax()]
        used = children[(children[:, :level] == busiest).all(axis=1), level]
        free = np.setdiff1d(np.arange(size), used)
        below = [rng.integers(0, v) for v in table.level_sizes[level + 1 :]]
        out.append(np.array([*busiest, free[0], *below], dtype=np.int64))
    return np.asarray(out, dtype=np.int64).reshape(-1, table.n_levels)


def check_parity(
    eager: GraphFn, exported: GraphFn, table: CodeTable,
    cases: tuple[tuple[int, int, int], ...] = PARITY_CASES, extra_items: int = 16, device: torch.device | str = "cpu",
) -> list[ParityCase]:
    tables = [table, extend_table(table, synthetic_extra_items(table, extra_items))]
    out = []
    for t_i, tab in enumerate(tables):
        tensors = TableTensors.from_table(tab, device)
        for c_i, (b, length, e) in enumerate(cases):
            inputs = example_inputs(tensors, b, length, e, seed=100 * t_i + c_i)
            with torch.inference_mode():
                want_items, want_scores = (x.cpu().numpy() for x in eager(*inputs))
                got_items, got_scores = (np.asarray(x.cpu().numpy()) for x in exported(*inputs))
            finite = np.isfinite(want_scores) & np.isfinite(got_scores)
            diff = float(np.abs(want_scores[finite] - got_scores[finite]).max()) if finite.any() else 0.0
            out.append(ParityCase(
                b, length, e, tab.n_items, float((want_items == got_items).mean()), diff,
                int((np.isfinite(want_scores) != np.isfinite(got_scores)).sum()),
            ))
    return out
