"""Collaborative item vectors from interaction sequences alone (for items without text).

Counts co-occurrences within a small window of each sequence, turns them into positive
PMI, and factorises with randomised truncated SVD (``torch.svd_lowrank`` on a sparse
matrix, so memory stays O(non-zeros) even for large catalogues).
"""

from __future__ import annotations

import numpy as np
import torch


def cooccurrence_counts(sequences: list[np.ndarray], n_items: int, window: int = 3) -> torch.Tensor:
    """Symmetric sparse ``[n_items, n_items]`` co-occurrence counts weighted by 1/distance."""
    rows, cols, vals = [], [], []
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.int64)
        for d in range(1, window + 1):
            if len(seq) <= d:
                break
            a, b = seq[:-d], seq[d:]
            rows += [a, b]
            cols += [b, a]
            w = np.full(len(a), 1.0 / d, dtype=np.float32)
            vals += [w, w]
    if not rows:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (n_items, n_items))
    idx = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))
    vals_t = torch.from_numpy(np.concatenate(vals))
    return torch.sparse_coo_tensor(idx, vals_t, (n_items, n_items), check_invariants=True).coalesce()


def cooccurrence_embeddings(
    sequences: list[np.ndarray], n_items: int, dim: int = 64, window: int = 3, seed: int = 0
) -> np.ndarray:
    """PPMI + truncated SVD item vectors, L2-normalised; items never seen get zeros."""
    counts = cooccurrence_counts(sequences, n_items, window)
    idx, val = counts.indices(), counts.values()
    if val.numel() == 0:
        return np.zeros((n_items, dim), dtype=np.float32)
    row_sum = torch.zeros(n_items).index_add_(0, idx[0], val)
    total = val.sum()
    pmi = torch.log(val * total / (row_sum[idx[0]] * row_sum[idx[1]]))
    keep = pmi > 0
    ppmi = torch.sparse_coo_tensor(idx[:, keep], pmi[keep], (n_items, n_items), check_invariants=True).coalesce()
    k = min(dim, n_items - 1)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # svd_lowrank draws a random projection: keep results reproducible
    u, s, _ = torch.svd_lowrank(ppmi, q=k, niter=4)
    torch.random.set_rng_state(gen_state)
    vec = (u * s.sqrt()).numpy().astype(np.float32)
    if vec.shape[1] < dim:
        vec = np.pad(vec, ((0, 0), (0, dim - vec.shape[1])))
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.divide(vec, norms, out=np.zeros_like(vec), where=norms > 0)
