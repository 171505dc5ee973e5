"""The re-ranker: a dense head that re-orders the generator's final beam (LIGER-style hybrid).

The user is the encoder's state at the most recent item; an item is a vector composed from
its codes' embeddings by a small MLP (plus, optionally, a learned ID vector for the items
known at training). Trained with a softmax over the whole catalogue next to the generative
loss; at inference the final beam is re-ordered by ``generative log-prob + weight * dense
logit``. Beam search and the dense score see the catalogue differently (a prefix tree vs one
vector per item) and their errors differ; the dense loss is also the objective of the
strongest ID-based baselines. Items added after training have no ID vector and are scored
by their codes alone, so cold start is unchanged.

The re-ranker owns no embeddings of its own for codes: callers pass the generator's code
vectors ``[..., levels, d]``, so both heads train one shared code table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn


class RerankConfig(BaseModel):
    # Inference: score = generative log-prob + weight * dense logit. Training tunes the weight
    # on validation and stores it with the model's weights (``Reranker.set_weight``); this is
    # the weight a model starts with (and the tuned one in artifacts saved before that).
    weight: float = 1.0
    loss_weight: float = 1.0  # the head's cross-entropy next to the generative loss
    # Give the items known at training a learned ID vector (training sizes the table). Items
    # added later use their codes alone, which ``id_dropout`` (a share of IDs hidden per
    # step) trains for.
    item_ids: bool = False
    id_dropout: float = 0.1


class Reranker(nn.Module):
    def __init__(self, config: RerankConfig, d_model: int, n_levels: int, id_items: int = 0) -> None:
        """``id_items``: items ``0..id_items-1`` get a learned ID vector (0: codes only)."""
        super().__init__()
        self.config = config
        self.id_items = int(id_items)
        self.weight = float(config.weight)
        d = d_model
        # Concatenated (not summed) code embeddings through an MLP, so levels interact.
        self.item_tower = nn.Sequential(nn.Linear(n_levels * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.user_tower = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        if self.id_items:
            self.item_id_emb = nn.Embedding(self.id_items, d)
            nn.init.zeros_(self.item_id_emb.weight)  # a warm start begins from the code-only head

    # ------------------------------------------------------------ the weight
    def set_weight(self, weight: float) -> None:
        """The weight of the dense logit at inference (training sets the one tuned on validation)."""
        self.weight = float(weight)

    def get_extra_state(self) -> torch.Tensor:
        # The weight is saved with the parameters; a plain float keeps it a constant of the graph.
        return torch.tensor(self.weight, dtype=torch.float64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.set_weight(float(state))

    # ------------------------------------------------------------ vectors
    def item_vectors(self, code_vectors: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """``code_vectors [..., levels, d]`` (of item indices ``items``) -> item vectors ``[..., d]``.
        Items the ID table does not know (added after training, or no ``items``) get their codes' vector."""
        vec = self.item_tower(code_vectors.flatten(-2))
        if self.id_items and items is not None:
            known = (items < self.id_items)[..., None]
            vec = vec + torch.where(known, self.item_id_emb(items.clamp(max=self.id_items - 1)), torch.zeros_like(vec))
        return vec

    def user_vector(self, memory: torch.Tensor) -> torch.Tensor:
        """The encoder state at the most recent item (histories are left-padded)."""
        return self.user_tower(memory[:, -1])

    def scores(self, memory: torch.Tensor, code_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Dense logits ``[B, W]`` of candidates ``items [B, W]`` (valid indices) with code vectors
        ``[B, W, levels, d]``. A per-user normaliser would not change any order, so none is applied."""
        cand = self.item_vectors(code_vectors, items)  # [B, W, d]
        return (cand @ self.user_vector(memory)[:, :, None]).squeeze(-1).float()

    # ------------------------------------------------------------ training
    def loss(self, states: torch.Tensor, catalogue: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy of the target items against the whole catalogue, whose code
        vectors are ``catalogue [N, levels, d]`` (row i = item i), for users whose encoder states at
        their most recent item are ``states [T, d]``."""
        n = catalogue.shape[0]
        items = torch.arange(n, device=catalogue.device)
        if self.training and self.id_items and self.config.id_dropout > 0:
            # Hide some items' IDs each step, so the code-only vector of a new item is trained too.
            hidden = torch.rand(n, device=items.device) < self.config.id_dropout
            items = torch.where(hidden, torch.full_like(items, self.id_items), items)
        logits = self.user_tower(states) @ self.item_vectors(catalogue, items).T
        return F.cross_entropy(logits.float(), targets)

    # ------------------------------------------------------------ inference
    def rerank(
        self, items: torch.Tensor, generative: torch.Tensor, dense: torch.Tensor, top_k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Order a final beam by ``generative + weight * dense`` and keep ``top_k``; unfilled
        slots (score -inf) stay last."""
        return rerank(items, generative, dense, self.weight, top_k)


def rerank(
    items: torch.Tensor, generative: torch.Tensor, dense: torch.Tensor, weight: float, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``items [B, W]`` ordered by ``generative + weight * dense`` (stable), the first ``top_k``
    with their combined scores. Training tries several weights on one beam with it."""
    combined, order = torch.sort(generative + weight * dense, dim=1, descending=True, stable=True)
    return torch.gather(items, 1, order[:, :top_k]), combined[:, :top_k]
