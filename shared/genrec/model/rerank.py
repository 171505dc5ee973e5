"""The re-ranker: a dense head that re-orders the generator's final beam (LIGER-style hybrid).

A user's vector (below) is scored against each item's, composed from
its codes' embeddings by a small MLP (plus, by default, a learned ID vector for the items
known at training). Trained with a softmax over the whole catalogue next to the generative
loss; at inference the final beam is re-ordered by ``generative log-prob + weight * dense
logit``. Beam search and the dense score see the catalogue differently (a prefix tree vs one
vector per item) and their errors differ; the dense loss is also the objective of the
strongest ID-based baselines. Items added after training have no ID vector and are scored
by their codes alone, so cold start is unchanged.

The user is, by default, read from the history by the head itself (``user_state = "history"``):
a small causal transformer of its own (SASRec-like, more dropout than the generator) over the
history's item vectors, tied to the items it scores. The two retrievers then share only the code
table, and their errors differ more. ``user_state = "encoder"`` takes the encoder's state instead.

Beside the head's vectors, an ID tower (``id_tower``, on by default) adds a user and item pair of its own from
item IDs alone, trained with its own softmax; its logit is added to the head's (user and item vectors are the
head's columns, then the tower's), so everything that scores a vector product serves it unchanged.

With ``catalogue_top`` M the head is a retriever too: its own best M items of the whole catalogue
join the final beam (``TigerModel.scored_beam``), so an item the beam missed can still be ranked.
Training scores every item per call (``catalogue_scores``: the weights change each step); a served
model's weights do not, so the serving graph freezes the trained items' vectors once
(``freeze_catalogue``) and per call builds only those of items fed since (one thread, batch 1: 10.9
against 34.9 ms scanned on 10k items, 19.5 against 508 ms on 100k: bench/results/graph-head-frozen-cpu.md).
Served, the frozen items' logits are first estimated in int8 (``frozen_estimates``: under ONNX Runtime
1.33x less CPU per user at batch 1 on 100k items, 1.98x on 1M) and a shortlist of the best estimates is
scored exactly (``exact_scores``, ``ESTIMATE_SHORTLIST``).

The re-ranker owns no embeddings of its own for codes: callers pass the generator's code
vectors ``[..., levels, d]``, so both heads train one shared code table.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, model_validator
from torch import nn

from genrec.config import MAX_HISTORY
from genrec.model.layers import Dropout, EncoderLayer

# How many times its ``catalogue_top`` a head scores exactly of its best estimates (``frozen_estimates``): the
# best 100 held the exact best 50 for each of 1,000 users of four heads (trained: Amazon Beauty's, 12k items,
# and the demo's; untrained: 100k items), the best 200 for each of 400 at 1M items (the best 100 missed 2):
# bench/results/served-graph-int8-head-s38.md.
ESTIMATE_SHORTLIST = 4


def int8_product(quantised: torch.Tensor, int8_columns: torch.Tensor) -> torch.Tensor:
    """``quantised [B, d]`` (integers -63..63, as floats) times ``int8_columns [d, N]``: exact integers
    (|sums| below 2**24), so a float product gives them; exported to ONNX, ONNX Runtime's int8 kernel
    (``genrec.serving.onnx_ops``), reading a quarter of the bytes."""
    return quantised @ int8_columns.float()


def frozen_estimates(user: torch.Tensor, int8_columns: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Estimates ``[B, N]`` of the logits of users ``user [B, d]`` against the frozen items, stored per item
    as int8 columns ``[d, N]`` times ``scales [N]``: each user quantised to 7 bits on its own scale (x86's int8
    kernel without VNNI sums pairs of products in 16 bits: 7 bits keep them exact), an exact integer product,
    then two scalings. Every step is exact or one IEEE operation, so torch and ONNX Runtime
    give the same estimates bit for bit, and so the same shortlist (``ESTIMATE_SHORTLIST``): the served
    list is the reference graph's."""
    step = user.abs().amax(1, keepdim=True).clamp(min=1e-30) / 63
    return int8_product(torch.round(user / step), int8_columns) * scales * step


class RerankConfig(BaseModel):
    # Inference: score = generative log-prob + weight * dense logit. Training tunes the weight
    # on validation and stores it with the model's weights (``Reranker.set_weight``); this is
    # the weight a model starts with, the one validation keeps unless it shows another better
    # (``training.generative.choose_weight``), and the tuned one in artifacts saved before that.
    # 5: test NDCG@10 peaked at 5-12 on Amazon Beauty, MovieLens-100K and the synthetic catalogue.
    weight: float = 5.0
    loss_weight: float = 1.0  # the head's cross-entropy next to the generative loss
    # Give the items known at training a learned ID vector (training sizes the table). Items
    # added later use their codes alone, which ``id_dropout`` (a share of IDs hidden per
    # step) trains for: the collaborative signal the codes alone miss (quality-*-rerank-item-ids.md).
    item_ids: bool = True
    id_dropout: float = 0.1
    # In training, each trained item's ID vector is its own plus a learned projection of its content
    # vector (the tokenizer's input, ``Reranker.attach_content``): an item seen a few times starts from
    # what it is like, not from zero, and the projection learns from every item. Folded into the ID
    # table when training ends (``fold_content``): a served model is unchanged. Off: on Amazon Beauty it trailed
    # the default from epoch 7 on (bench/results/quality-amazon-beauty-id-content-s40.md).
    id_content: bool = False
    # Where the user's vector comes from (see the module docstring): "encoder" or "history". The
    # history beat the encoder's state by 0.007-0.013 NDCG@10 on Amazon Beauty and MovieLens-100K
    # (on the synthetic catalogue it lost 0.013: quality-*-history-tower*.md).
    user_state: Literal["encoder", "history"] = "history"
    history_layers: int = Field(default=2, ge=1)
    history_heads: int = Field(default=2, ge=1)
    history_dropout: float = Field(default=0.3, ge=0.0, lt=1.0)
    # How many of the head's own best items over the whole catalogue join the final beam as
    # candidates (0: the beam alone). The two retrievers find different items (on Amazon Beauty
    # the beam of 50 held the target for 16.8 % of users, the head's top 50 for 17.5 %, either for
    # 22.5 %); each joining item is scored by both, its generative score the beam's lowest.
    catalogue_top: int = Field(default=50, ge=0)
    # The final beam's width beside them when a call names none (serving, and test unless a budget
    # names one), while they alone can fill the list (catalogue_top >= top-k): the lists a beam of
    # 20 serves beside the head's 50 held the target as often as a beam of 50's, at about half
    # the decode (quality-served-beam-s33.md).
    beam_width: int = Field(default=20, ge=1)
    # A second pair of user and item vectors of this width (0: none), from item IDs alone: the items'
    # own ID vectors, and a causal tower of its own (as the history tower, its input scaled by
    # sqrt(width) as SASRec's) over the history's. Trained with its own softmax over the catalogue;
    # its logit is added to the head's. The two rank differently: the head of an Amazon Beauty model and
    # a separately trained SASRec shared 20 % of their top 10, and their summed log-probabilities scored
    # test NDCG@10 0.0568 against 0.0459 and 0.0509 apart; trained in, Beauty's test NDCG@10 went from
    # 0.0520 to 0.0600 (bench/results/quality-id-tower-s46.md). An item added after training has no ID:
    # here it is the mean of the trained items sharing its first code (``Reranker.unknown_tower``). It reads
    # the history's IDs, so a head without either has none (set explicitly there, an error).
    id_tower: int = Field(default=64, ge=0)

    @model_validator(mode="after")
    def _id_tower_reads_history(self) -> RerankConfig:
        if self.id_tower and (self.user_state != "history" or not self.item_ids):
            if "id_tower" in self.model_fields_set:
                raise ValueError("id_tower needs item_ids = true and user_state = 'history' (it reads their IDs)")
            self.id_tower = 0
        return self


class HistoryTower(nn.Module):
    """A causal transformer over a history's item vectors ``[B, L, d]`` (left-padded): each position
    attends to itself and the ``window - 1`` real items before it, with a learned bias per distance
    and head (as the generator's encoder, so training reads every prefix of a sequence in one pass)."""

    def __init__(self, d_model: int, layers: int, heads: int, dropout: float, window: int) -> None:
        super().__init__()
        self.window = int(window)
        self.distance_bias = nn.Parameter(torch.zeros(heads, self.window))
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, 2 * d_model, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.drop = Dropout(dropout)

    def forward(self, items: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``items [B, L, d]``, ``valid [B, L]`` (False: padding) -> the state at each position ``[B, L, d]``."""
        pos = torch.arange(items.shape[1], device=items.device)
        back = pos[:, None] - pos[None]  # how far key j is behind query i
        # A padded query sees itself, so no row of the mask is empty.
        seen = ((back >= 0) & (back < self.window) & valid[:, None]) | (back == 0)
        bias = self.distance_bias[:, back.clamp(0, self.window - 1)]  # [heads, L, L]
        x = self.drop(items * valid[..., None])
        mask = torch.where(seen[:, None], bias[None], float("-inf"))
        for layer in self.layers:
            x = layer(x, mask)
        return self.ln(x)


class Reranker(nn.Module):
    def __init__(
        self, config: RerankConfig, d_model: int, n_levels: int, id_items: int = 0, window: int = MAX_HISTORY
    ) -> None:
        """``id_items``: items ``0..id_items-1`` get a learned ID vector (0: codes only); ``window``:
        how many recent items the history tower reads (the generator's ``max_history``)."""
        super().__init__()
        self.config = config
        self.id_items = int(id_items)
        self.weight = float(config.weight)
        self.d_model = d = d_model
        # The ID tower's width (``RerankConfig.id_tower``; none without an ID table): user and item vectors
        # are the head's d columns, then these.
        self.id_width = int(config.id_tower) if self.id_items else 0
        # Concatenated (not summed) code embeddings through an MLP, so levels interact.
        self.item_tower = nn.Sequential(nn.Linear(n_levels * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        if config.user_state == "history":
            self.history = HistoryTower(d, config.history_layers, config.history_heads, config.history_dropout, window)
        else:
            self.history = None
            self.user_tower = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        if self.id_items:
            self.item_id_emb = nn.Embedding(self.id_items, d)
            nn.init.zeros_(self.item_id_emb.weight)  # a warm start begins from the code-only head
        self.content_proj: nn.Linear | None = None  # training only (``attach_content``)
        if self.id_width:
            self.id_tower_emb = nn.Embedding(self.id_items, self.id_width)
            nn.init.normal_(self.id_tower_emb.weight, std=0.02)
            self.id_history = HistoryTower(self.id_width, config.history_layers, config.history_heads,
                                           config.history_dropout, window)
            # Its vector of an item it does not know, by the item's first code (``set_tower_regions``, after
            # training; saved with the weights). Empty (weights saved before it): the trained items' mean.
            self.register_buffer("id_tower_regions", torch.zeros(0, self.id_width))
        width = d + self.id_width
        # The trained items' vectors, once frozen (``freeze_catalogue``) ``[N0, width]``, and for the int8 product
        # the same one column per item ``[width, N0]`` over each item's scale ``[N0]``. Not saved with the weights.
        self.register_buffer("frozen_rows", torch.zeros(0, width), persistent=False)
        self.register_buffer("frozen_int8", torch.zeros(width, 0, dtype=torch.int8), persistent=False)
        self.register_buffer("frozen_scales", torch.zeros(0), persistent=False)
        # And its item tower's first layer of every code (``code_layer``) and the ID tower's mean item, frozen with
        # them.
        self.register_buffer("frozen_code_layer", torch.zeros(0, 2 * d), persistent=False)
        self.register_buffer("frozen_tower_mean", torch.zeros(0), persistent=False)

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
    def item_vectors(
        self, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, items: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Item vectors ``[..., d (+ id_width)]`` of items with codes ``item_codes [..., levels]`` (item indices
        ``items``) from each level's code vectors ``level_codes`` (``[V_l, d]``). The item tower's first layer is linear
        in each code's vector, so it is applied to each code (``code_layer``) and gathered per item: applied
        per item it was over half of a training step's arithmetic (12k items against a few hundred codes).
        Items the ID table does not know (added after training, or no ``items``) get their codes' vector (and in
        the ID tower's columns ``unknown_tower``'s)."""
        return self._beside_tower(self._head_vectors(level_codes, item_codes, items), items, item_codes)

    def _head_vectors(
        self, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, items: torch.Tensor | None
    ) -> torch.Tensor:
        """The head's columns ``[..., d]`` of ``item_vectors``: the item tower's vector plus known items' IDs."""
        _, act, last = self.item_tower
        return self._with_ids(last(act(self._first_layer(level_codes, item_codes))), items)

    def code_layer(self, level_codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The item tower's first layer (without its bias) of every code, level after level ``[sum V_l, 2d]``:
        computed from the weights, or once frozen (``freeze_catalogue``) read, so a served call multiplies no
        weights by weights."""
        if self.frozen_code_layer.shape[0]:
            return self.frozen_code_layer
        weight, d = self.item_tower[0].weight, level_codes[0].shape[1]
        return torch.cat([codes @ weight[:, level * d:(level + 1) * d].T for level, codes in enumerate(level_codes)])

    def _first_layer(self, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor) -> torch.Tensor:
        """The item tower's first layer ``[..., 2d]`` of items with codes ``item_codes [..., levels]``."""
        rows, total = self.code_layer(level_codes), self.item_tower[0].bias
        starts = [0, *itertools.accumulate(c.shape[0] for c in level_codes[:-1])]  # each level's first row
        shape = (*item_codes.shape[:-1], rows.shape[1])
        if self.training:
            # One gather-and-sum, whose gradient costs a third of the index_adds below (a training step
            # builds the whole catalogue's vectors). Served graphs keep the plain gathers, which ONNX has.
            flat = (item_codes + torch.tensor(starts, device=item_codes.device)).reshape(-1, len(starts))
            return F.embedding_bag(flat, rows, mode="sum").view(shape) + total
        for level, start in enumerate(starts):
            # index_select, not indexing: its gradient is an index_add, several times cheaper on CPU
            total = total + rows.index_select(0, item_codes[..., level].flatten() + start).view(shape)
        return total

    def _with_ids(self, vec: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Code vectors ``vec [..., d]`` plus the ID vectors of ``items`` the ID table knows."""
        if self.id_items and items is not None:
            known = (items < self.id_items)[..., None]
            vec = vec + torch.where(known, self._id_vectors(items.clamp(max=self.id_items - 1)), torch.zeros_like(vec))
        return vec

    def _beside_tower(self, vec: torch.Tensor, items: torch.Tensor | None, item_codes: torch.Tensor) -> torch.Tensor:
        """The head's columns ``vec [..., d]`` and, with an ID tower, its vectors of ``items`` (codes ``item_codes
        [..., levels]``) beside them ``[..., width]``; for an item it does not know, ``unknown_tower``'s."""
        if not self.id_width:
            return vec
        unknown = self.unknown_tower(item_codes).expand(*vec.shape[:-1], -1)
        if items is None:
            return torch.cat([vec, unknown], -1)
        known = (items < self.id_items)[..., None]
        return torch.cat([vec, torch.where(known, self.id_tower_emb(items.clamp(max=self.id_items - 1)), unknown)], -1)

    def unknown_tower(self, item_codes: torch.Tensor) -> torch.Tensor:
        """The ID tower's vectors ``[..., width]`` of items it does not know (added after training), with codes
        ``item_codes [..., levels]``: the mean of the trained items that share their first code
        (``set_tower_regions``). The trained items' mean instead scored no hidden item of the synthetic catalogue's
        cold-start benchmark into a top 10 (bench/results/quality-id-tower-s47.md); weights saved without
        regions still get it."""
        if self.id_tower_regions.shape[0]:  # static: a graph traced with it keeps it
            return F.embedding(item_codes[..., 0], self.id_tower_regions)
        return self.tower_mean().expand(*item_codes.shape[:-1], -1)

    @torch.no_grad()
    def set_tower_regions(self, item_codes: torch.Tensor, first_codes: int) -> None:
        """``unknown_tower``'s table from the trained items' codes ``item_codes [id_items, levels]`` (the first
        level has ``first_codes`` codes): per first code, the mean ID tower vector of the trained items with it,
        or all trained items' mean where none has it. Called once training is over; nothing to do without a tower."""
        if not self.id_width:
            return
        weight = self.id_tower_emb.weight
        region = item_codes[:, 0].to(weight.device)
        sums = weight.new_zeros(first_codes, self.id_width).index_add_(0, region, weight)
        counts = weight.new_zeros(first_codes).index_add_(0, region, torch.ones_like(weight[:, 0]))
        self.id_tower_regions = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], weight.mean(0))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        # The regions' size is the saved one: none before training ends (weights saved before regions existed get
        # none from ``genrec.model.generative``'s upgrade of older weights).
        key = prefix + "id_tower_regions"
        if self.id_width and key in state_dict:
            self.id_tower_regions = torch.empty_like(state_dict[key], device=self.id_tower_regions.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _id_vectors(self, items: torch.Tensor) -> torch.Tensor:
        ids = self.item_id_emb(items)
        if self.content_proj is not None:
            ids = ids + self.content_proj(self.content[items])
        return ids

    def tower_mean(self) -> torch.Tensor:
        """The ID tower's trained items' mean vector ``[id_width]``, an unknown item's in weights saved without
        regions (frozen with the catalogue for serving, where the table can hold a million items)."""
        return self.frozen_tower_mean if self.frozen_tower_mean.shape[0] else self.id_tower_emb.weight.mean(0)

    def attach_content(self, vectors: torch.Tensor) -> None:
        """Training with ``id_content``: the trained items' content vectors ``[id_items, E]`` (row i: item i),
        projected (a new layer, zero at first: training starts from the head without it) and added to
        their ID vectors. Attach before the optimiser is built."""
        if not self.id_items or vectors.shape[0] != self.id_items:
            raise ValueError(f"content vectors: one row per trained item ({self.id_items}), got {vectors.shape[0]}")
        device = self.item_id_emb.weight.device
        self.content_proj = nn.Linear(vectors.shape[1], self.item_id_emb.embedding_dim, bias=False, device=device)
        nn.init.zeros_(self.content_proj.weight)
        self.register_buffer("content", vectors.float().to(device), persistent=False)

    @torch.no_grad()
    def fold_content(self) -> None:
        """Fold the content projection into the ID table (the same vectors, the weights of a head without
        it), once training is over; nothing to do without one."""
        if self.content_proj is None:
            return
        self.item_id_emb.weight += self.content_proj(self.content)
        self.content_proj = None
        del self.content

    @property
    def reads_history(self) -> bool:
        """Whether the user's vector comes from the history tower (callers pass the history's item vectors)."""
        return self.history is not None

    def user_vector(self, memory: torch.Tensor, history_vectors: torch.Tensor | None = None,
                    valid: torch.Tensor | None = None) -> torch.Tensor:
        """The user's vector ``[B, d]``: from the encoder state at the most recent item (``memory``,
        histories left-padded) or, with a history tower, from ``history_vectors [B, L, d]`` of the
        items where ``valid`` (with an ID tower, its columns read by that tower). An empty history gives the zero
        vector: every dense logit 0."""
        if self.history is None:
            return self.user_tower(memory[:, -1])
        return self.user_states(history_vectors, valid)[:, -1] * valid.any(1, keepdim=True)

    def user_states(self, history_vectors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The history tower's state (and the ID tower's beside it) at each position ``[B, L, width]``."""
        d = self.d_model
        states = self.history(history_vectors[..., :d], valid)
        if self.id_width:
            states = torch.cat([states, self.id_history(history_vectors[..., d:] * self.id_width**0.5, valid)], -1)
        return states

    def scores(
        self, user: torch.Tensor, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """Dense logits ``[B, W]`` for users ``user [B, d]`` (``user_vector``) of candidates ``items [B, W]``
        (valid indices) with codes ``item_codes [B, W, levels]`` (``level_codes``: as ``item_vectors``). A
        per-user normaliser would not change any order, so none is applied."""
        cand = self.item_vectors(level_codes, item_codes, items)  # [B, W, d]
        return (cand @ user[:, :, None]).squeeze(-1).float()

    def catalogue_scores(
        self, user: torch.Tensor, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, room: int = 0
    ) -> torch.Tensor:
        """Dense logits ``[B, N + room]`` of every item of the catalogue ``item_codes [N, levels]``, as
        ``scores`` gives them, then ``room`` columns of -inf (a caller's, made in the same copy: at 100k
        items each copy of the row was ~1.5 % of a served call); ``level_codes``: each level's code vectors
        ``[V_l, d]``. The items whose vectors are frozen (``freeze_catalogue``: the catalogue starts with
        them) are read, the rest built; the frozen ones are estimates (``frozen_estimates``),
        ``exact_scores`` exact."""
        frozen = self.frozen_rows.shape[0]  # static: a graph traced with it keeps it
        parts = [frozen_estimates(user.float(), self.frozen_int8, self.frozen_scales)] if frozen else []
        parts.append(self._scan(user, level_codes, item_codes[frozen:] if frozen else item_codes, frozen))
        if room:
            parts.append(torch.full((user.shape[0], room), float("-inf"), device=user.device))
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def exact_scores(self, user: torch.Tensor, items: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
        """The exact logits ``[B, K]`` of ``items [B, K]`` (valid indices), given ``catalogue_scores``'s
        ``estimates [B, N]``: a frozen item's from its stored vector, the others' (built per call) read."""
        read = estimates.gather(1, items)
        frozen = self.frozen_rows.shape[0]
        if not frozen:
            return read
        vectors = self.frozen_rows.index_select(0, items.clamp(max=frozen - 1).flatten())
        exact = (vectors.view(*items.shape, -1) @ user[:, :, None]).squeeze(-1).float()
        return torch.where(items < frozen, exact, read)

    @torch.no_grad()
    def freeze_catalogue(self, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, chunk: int) -> None:
        """Compute the item tower's first layer of every code (``code_layer``) and the vectors of items
        0..N0-1 with codes ``item_codes [N0, levels]`` once, for every later call: for a model whose
        weights no longer change (serving). ``chunk`` items at a time (a million items' hidden layer at
        once would take gigabytes). Tables passed later must start with these items (the code feed only
        appends)."""
        if (self.d_model + self.id_width) * 63 * 127 >= 2**24:
            raise ValueError("int8 estimates need d_model + id_tower <= 2096 (their integer sums exact in fp32)")
        items = torch.arange(item_codes.shape[0], device=item_codes.device)
        self.frozen_code_layer = self.frozen_code_layer[:0]  # from this model's weights, not a previous freeze
        self.frozen_code_layer = self.code_layer(level_codes)
        if self.id_width:
            self.frozen_tower_mean = self.id_tower_emb.weight.mean(0)
        parts = [self.item_vectors(level_codes, codes, ids)
                 for codes, ids in zip(item_codes.split(chunk), items.split(chunk), strict=True)]
        self.frozen_rows = torch.cat(parts).contiguous() if parts else self.frozen_rows[:0]
        self.frozen_scales = self.frozen_rows.abs().amax(1).clamp(min=1e-12) / 127  # symmetric, per item
        self.frozen_int8 = (self.frozen_rows / self.frozen_scales[:, None]).round().to(torch.int8).T.contiguous()

    def _scan(
        self, user: torch.Tensor, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, first: int
    ) -> torch.Tensor:
        """Logits ``[B, n]`` of items ``first .. first + n - 1`` with codes ``item_codes [n, levels]``,
        without building their vectors (two matrix products per item): the item tower's first layer
        applied per code (``_first_layer``), its last layer folded into the user's side. About
        2·levels·d adds and a 2d-long dot product per item and user."""
        _, act, last = self.item_tower
        hidden = self._first_layer(level_codes, item_codes)
        head = user[:, :self.d_model]
        scores = (head @ last.weight) @ act(hidden).T + (head @ last.bias)[:, None]
        if self.id_items:
            # the items' indices, n traced as a shape (not a constant)
            items = torch.cumsum(torch.ones_like(item_codes[:, 0]), 0) - 1 + first
            ids = self._with_ids(torch.zeros_like(head[:1]), items)
            scores = scores + user @ self._beside_tower(ids, items, item_codes).T
        return scores.float()

    # ------------------------------------------------------------ training
    def loss(
        self, level_codes: Sequence[torch.Tensor], item_codes: torch.Tensor, targets: torch.Tensor,
        states: torch.Tensor, history: torch.Tensor, rows: torch.Tensor,
    ) -> torch.Tensor:
        """Softmax cross-entropy of ``targets [T]`` against the whole catalogue ``item_codes [N, levels]``
        (row i = item i; ``level_codes``: each level's code vectors ``[V_l, d]``). The users are the flat
        positions ``rows`` of ``history [B, L]`` (row ``b * L + t``: after the t-th item of history b),
        whose encoder states are ``states [T, d]``. With an ID tower, the sum of each part's own cross-entropy:
        trained as one softmax, each part would learn what the other misses, and they would rank alike."""
        n = item_codes.shape[0]
        items = torch.arange(n, device=item_codes.device)
        shown = items
        if self.training and self.id_items and self.config.id_dropout > 0:
            # Hide some items' IDs each step, so the code-only vector of a new item is trained too.
            hidden = torch.rand(n, device=items.device) < self.config.id_dropout
            shown = torch.where(hidden, torch.full_like(items, self.id_items), items)
        vectors = self._head_vectors(level_codes, item_codes, shown)  # [N, d]
        if self.id_width:  # the head's IDs hidden, never the ID tower's own
            vectors = torch.cat([vectors, self.id_tower_emb(items)], 1)
        if self.history is None:
            users = self.user_tower(states)
        else:
            seq = vectors.index_select(0, history.clamp(min=0).flatten()).view(*history.shape, -1)
            users = self.user_states(seq, history >= 0).flatten(0, 1).index_select(0, rows)
        return sum(F.cross_entropy((u @ v.T).float(), targets)
                   for u, v in zip(users.split(self.part_widths, 1), vectors.split(self.part_widths, 1), strict=True))

    @property
    def part_widths(self) -> list[int]:
        """The columns of each part of a user or item vector: the head's, then the ID tower's."""
        return [self.d_model, self.id_width] if self.id_width else [self.d_model]

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
