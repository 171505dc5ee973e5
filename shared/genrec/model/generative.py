"""TIGER-style generative retrieval: an encoder-decoder over Semantic-ID tokens.

Encoder input: one hashed user token, then the user's last N items, each represented by
the sum of the embeddings of its code tokens (one position per item keeps the cost
linear in N up to 1024 rather than N x levels). The ``causal`` encoder (the default) lets
each item attend to itself, the ``max_history - 1`` items before it and the user token,
with a learned bias per distance: a position's state depends on nothing after it, so
training encodes a user's whole sequence once and trains every next item from it (about
one encoder row per target instead of a window's). The ``bidirectional`` encoder (weights
saved before the setting existed) adds a position-from-the-end embedding and attends both ways.
Decoder: BOS then the target item's codes; a separate head per level predicts the next
code. Item vectors are built from codes only, so new items work without retraining.

``TigerGenerator`` is that encoder-decoder; ``TigerModel``, the trained model, is the
generator and, unless turned off (``rerank = false``), a ``Reranker`` of its final beam
(``genrec.model.rerank``). ``TigerModel.generate`` is where the two meet: beam search (with
``catalogue_top``, plus the head's own best items of the catalogue, at the beam's lowest log-prob),
then those candidates ordered by ``generative log-prob + weight * dense logit``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, model_validator
from torch import nn

import genrec.model.beam as beam_search  # its stable_top, looked up per call: ONNX exports swap it
from genrec.config import MAX_HISTORY, MAX_SEQUENCE, TOP_K
from genrec.model.beam import Cache, constrained_beam_search, exclusion_keys
from genrec.model.code_table import CodeTable, slot_names
from genrec.model.layers import DecoderLayer, Dropout, EncoderLayer
from genrec.model.rerank import ESTIMATE_SHORTLIST, RerankConfig, Reranker

EVERY_ITEM_TRAINED = 2**62  # ``trained_items`` of a model that has not been told its catalogue
# The flat keys configs and artifacts used before the re-ranker had its own config.
_LEGACY_RERANK_KEYS = {"rerank_weight": "weight", "rerank_loss_weight": "loss_weight",
                       "rerank_item_ids": "item_ids", "rerank_id_dropout": "id_dropout"}
# What a head of that time was, where its keys are silent (the defaults have moved since).
_LEGACY_RERANK = {"item_ids": False, "user_state": "encoder", "catalogue_top": 0}


class GenerativeConfig(BaseModel):
    d_model: int = 128
    n_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    # The width every quality run measured (Amazon Beauty, MovieLens-100K, the synthetic catalogue); the
    # served graph costs 0.85-0.93x its cost at 512 (bench/results/graph-decoder-width-s34.md).
    d_ff: int = 256
    dropout: float = 0.1
    max_history: int = Field(default=MAX_HISTORY, ge=1, le=MAX_SEQUENCE)
    # Hashed user tokens (bucket 0: anonymous); 1: every user shares the one token, and a list depends
    # on the history alone. Tokens of 2,000 buckets cost the generator and bought the served lists
    # nothing measurable on Amazon Beauty, MovieLens-100K (3 seeds) and the synthetic catalogue
    # (3 seeds): quality-*-no-user-token-s3*.md.
    user_buckets: int = 1
    user_dropout: float = 0.1  # train-time chance of the anonymous token (serving may omit users)
    label_smoothing: float = 0.1
    # See the module docstring. Weights say which encoder they are (``TigerModel.from_state_dict``).
    encoder: Literal["causal", "bidirectional"] = "causal"
    # The dense head that re-orders the final beam and adds its own best items to it; None: the
    # beam's own order. On by default: on Amazon Beauty it lifts NDCG@10 from 0.0401 (the same
    # candidates in generative order) to 0.0520 (bench/results/quality-amazon-beauty.md); its softmax
    # over the whole catalogue is part of every training step. In TOML,
    # ``[model.rerank]`` sets its keys, ``rerank = false`` turns it off.
    rerank: RerankConfig | None = Field(default_factory=RerankConfig)
    # An item added after training is scored like an average item of the region its content codes
    # place it in, times this weight (the decoder was never taught its last codes, so on its own it
    # almost never generates one). 0: the decoder's own scores. A trade: the cold-start benchmark
    # (`genrec.bench.cold_start`) measures new items found against the rest displaced.
    fresh_item_weight: float = Field(default=1.0, ge=0.0)

    @model_validator(mode="before")
    @classmethod
    def _rerank_switch(cls, data: Any) -> Any:
        """``rerank = true/false``, and the flat ``rerank_*`` keys of older configs and artifacts
        (``rerank_head`` and four settings; ``rerank_id_items`` now comes with the weights)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("rerank"), bool):
            data["rerank"] = {} if data["rerank"] else None
        flat = {k: data.pop(k) for k in list(data) if k.startswith("rerank_")}
        if "rerank_head" in flat and not flat["rerank_head"]:
            data["rerank"] = None
        elif flat.get("rerank_head") or (flat and data.get("rerank") is not None):
            settings = {_LEGACY_RERANK_KEYS[k]: v for k, v in flat.items() if k in _LEGACY_RERANK_KEYS}
            data["rerank"] = {**(data.get("rerank") or _LEGACY_RERANK), **settings}
        return data


def user_bucket(user_id: str, buckets: int) -> int:
    """Stable hash of a user id into ``1..buckets-1`` (0 is reserved for anonymous)."""
    if buckets <= 1:
        return 0
    return 1 + zlib.crc32(user_id.encode()) % (buckets - 1)


class DecoderMemory(NamedTuple):
    """What the decoder reads of the encoder: each decoder layer's cross-attention keys / values of
    the memory ``[B, heads, S, d / heads]``, their mask (``TigerGenerator.encode``'s), and what BOS
    adds: the causal encoder's state at the most recent item ``[B, d]`` (it has read the whole
    history, the other states only what came before them), or None."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor | None
    start: torch.Tensor | None

    @property
    def users(self) -> int:
        """B, the rows it holds (read off the keys: every model has a decoder layer)."""
        return self.kv[0][0].shape[0]


def relative_bias(table: torch.Tensor, window: int, back: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The additive attention mask ``[B, heads, Q, 1 + L]`` of queries over the user token and L
    items: ``back [B, Q, L]`` is how far each item is behind the query's reference position,
    ``valid [B, 1, L]`` which items are real. An item 0..window-1 back gets ``table[:, back]``
    (``table [heads, window + 1]``), the user token ``table[:, window]``; any other item -inf.
    (``window`` is a number, not read off ``table``: a traced graph would hold a size as a tensor.)"""
    seen = (back >= 0) & (back < window) & valid
    items = torch.where(seen[:, None], table[:, back.clamp(0, window - 1)].transpose(0, 1), float("-inf"))
    user = table[:, window].view(1, -1, 1, 1).expand(items.shape[0], -1, items.shape[2], 1)
    return torch.cat([user, items], dim=3)


def _with_user_row(bias: torch.Tensor) -> torch.Tensor:
    """The items' rows ``[B, heads, L, 1 + L]`` of an encoder mask under the user token's own row,
    which sees itself alone."""
    first = torch.full_like(bias[:, :, :1], float("-inf"))
    first[..., 0] = 0.0
    return torch.cat([first, bias], dim=2)


class TigerGenerator(nn.Module):
    """Encoder + per-level decoder heads: the log-probabilities of an item's codes, level by
    level, and constrained beam search over them."""

    def __init__(self, config: GenerativeConfig, level_sizes: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.level_sizes = [int(v) for v in level_sizes]
        d = config.d_model
        offsets = torch.tensor([0, *torch.tensor(self.level_sizes).cumsum(0).tolist()[:-1]], dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        # Items 0..trained_items-1 were the catalogue at training; later ones (added with content
        # codes) are fresh to the decoder, and beam search scores them by their siblings. Saved
        # with the weights (extra state); a plain int keeps it a constant of the serving graph.
        # Training sets it; until then every item counts as trained.
        self.trained_items = EVERY_ITEM_TRAINED
        self.code_emb = nn.Embedding(sum(self.level_sizes), d)
        self.user_emb = nn.Embedding(max(config.user_buckets, 1), d)
        if self.causal:
            # Per head, the attention bias of an item 0..max_history-1 positions back from the
            # query (the encoder's) or from the most recent item (the decoder's cross-attention:
            # the memory's states carry no position); the last column is the user token's.
            self.distance_bias = nn.Parameter(torch.zeros(config.n_heads, config.max_history + 1))
            self.recency_bias = nn.Parameter(torch.zeros(config.n_heads, config.max_history + 1))
        else:
            self.pos_emb = nn.Embedding(config.max_history + 1, d)
        self.dec_pos = nn.Embedding(len(self.level_sizes), d)
        self.bos = nn.Parameter(torch.zeros(d))
        self.encoder = nn.ModuleList(
            EncoderLayer(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.decoder_layers)
        )
        self.enc_ln, self.dec_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, v) for v in self.level_sizes)
        self.drop = Dropout(config.dropout)

    def init_embeddings(self) -> None:
        """Small code and BOS embeddings. ``TigerModel`` calls this after building all its parts,
        so a seed gives the weights it always has."""
        nn.init.normal_(self.code_emb.weight, std=0.02)
        nn.init.normal_(self.bos, std=0.02)

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(self.trained_items, dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.trained_items = int(state)

    @property
    def fresh_from(self) -> int | None:
        """The first item index added after training (beam search scores those items by their
        trained siblings), or None when ``fresh_item_weight`` is 0 and the decoder's own scores stand."""
        return None if self.config.fresh_item_weight == 0 else self.trained_items

    @property
    def causal(self) -> bool:
        return self.config.encoder == "causal"

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [..., levels]`` -> the embedding of each code ``[..., levels, d]``."""
        return self.code_emb(codes + self.offsets)

    # ----------------------------------------------------------------- encoder
    def encode(
        self, history: torch.Tensor, item_codes: torch.Tensor, users: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``history [B, L]`` item indices (pad < 0, left-padded) -> memory ``[B, 1 + L, d]`` (the
        user token first), and the decoder's mask of it for the next item: bool ``[B, 1, 1, 1 + L]``
        (True: a real token), or the causal encoder's additive bias ``[B, heads, 1, 1 + L]``."""
        b, length = history.shape
        valid = history >= 0
        items = self.code_vectors(item_codes[history.clamp(min=0)]).sum(2)  # [B, L, d]
        if users is None:
            users = torch.zeros(b, dtype=torch.long, device=history.device)
        if self.causal:
            pos, keys, window = torch.arange(length, device=history.device), valid[:, None], self.config.max_history
            back = (pos[:, None] - pos[None])[None]  # how far key j is behind query i
            attn_mask = _with_user_row(relative_bias(self.distance_bias, window, back, keys))
            mem_mask = relative_bias(self.recency_bias, window, (length - 1 - pos)[None, None], keys)
        else:
            # Position counted from the most recent item, so left padding never shifts it.
            pos = torch.arange(length - 1, -1, -1, device=history.device).clamp(max=self.config.max_history)
            items = items + self.pos_emb(pos)[None]
            # the user token always visible
            attn_mask = mem_mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)[:, None, None, :]
        x = self.drop(torch.cat([self.user_emb(users)[:, None], items], dim=1))
        for layer in self.encoder:
            x = layer(x, attn_mask)
        return self.enc_ln(x), mem_mask

    # ----------------------------------------------------------------- decoder
    def decoder_memory(self, memory: torch.Tensor, mask: torch.Tensor) -> DecoderMemory:
        """What the decoder reads of ``encode``'s outputs for the item after the most recent one: the
        same at every level of a beam search, so computed once per request."""
        return DecoderMemory(self.memory_kv(memory), mask, memory[:, -1] if self.causal else None)

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each decoder layer's cross-attention keys / values of ``memory``."""
        return [layer.cross_attn.keys_values(memory) for layer in self.decoder]

    def decode(self, prefix: torch.Tensor, memory: DecoderMemory, cache: Cache = ()) -> tuple[torch.Tensor, Cache]:
        """Hidden states ``[B, W, T, d]`` of ``prefix [B, W, t]`` codes at the positions not in
        ``cache``, and the cache extended by them.

        Position 0 is BOS, position i the code of level i-1; the state at position t predicts
        level t. ``cache``: each layer's self-attention keys, values (rows: the B*W beams) of
        positions 0..t-1, so beam search decodes only position t; empty: all t+1 positions
        (teacher forcing).
        """
        b, w, t = prefix.shape
        start = cache[0].shape[2] if cache else 0  # positions already decoded (static: the level)
        first = max(start - 1, 0)  # the first code that is an input here
        bos = self.bos if memory.start is None else self.bos + memory.start[:, None, None, :]
        parts = [bos.expand(b, w, 1, -1)] if start == 0 else []
        if t > first:
            parts.append(self.code_emb(prefix[:, :, first:] + self.offsets[first:t]))
        x = torch.cat(parts, dim=2) + self.dec_pos.weight[start : t + 1]
        n = t + 1 - start
        x = self.drop(x.reshape(b * w, n, -1))
        # Position i sees positions <= i; a single new position sees them all (no mask needed).
        mask = torch.ones(n, t + 1, dtype=torch.bool, device=x.device).tril(start) if n > 1 else None
        present: list[torch.Tensor] = []
        for i, layer in enumerate(self.decoder):
            x, kv = layer(x, memory.kv[i], memory.mask, mask, cache[2 * i : 2 * i + 2])
            present += kv
        return self.dec_ln(x).reshape(b, w, n, -1), tuple(present)

    def loss(self, memory: DecoderMemory, target_codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy summed over code levels, the mean over ``target_codes
        [N, levels]``, row i decoded against row i of ``memory``."""
        n = len(self.level_sizes)
        h, _ = self.decode(target_codes[:, None, : n - 1], memory)
        h = h[:, 0]  # [N, n, d]
        total = h.new_zeros((), dtype=torch.float32)
        for lvl, head in enumerate(self.heads):
            logits = head(h[:, lvl]).float()
            total = total + F.cross_entropy(logits, target_codes[:, lvl], label_smoothing=self.config.label_smoothing)
        return total

    def target_rows(
        self, memory: torch.Tensor, history: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderMemory, torch.Tensor]:
        """Where the targets are: for ``targets [B, L]`` (the item after each position of ``history``,
        -1: none), the rows' (batch, position) indices, each row's decoder memory as serving would
        have it for the history up to that position (the user token and the items within
        ``max_history`` of it), and the encoder state there ``[N, d]``."""
        b_idx, t_idx = (targets >= 0).nonzero(as_tuple=True)
        back = t_idx[:, None, None] - torch.arange(targets.shape[1], device=targets.device)  # [N, 1, L]
        keys = history.index_select(0, b_idx)[:, None] >= 0
        if self.causal:
            mem_mask = relative_bias(self.recency_bias, self.config.max_history, back, keys)
        else:
            seen = keys & (back >= 0) & (back < self.config.max_history)
            mem_mask = torch.cat([torch.ones_like(seen[..., :1]), seen], dim=-1)[:, None]
        # index_select, not indexing: its gradient is an index_add, several times cheaper on CPU
        kv = [(k.index_select(0, b_idx), v.index_select(0, b_idx)) for k, v in self.memory_kv(memory)]
        states = memory.flatten(0, 1).index_select(0, b_idx * memory.shape[1] + 1 + t_idx)
        return b_idx, t_idx, DecoderMemory(kv, mem_mask, states if self.causal else None), states

    # ---------------------------------------------------------------- search
    def beam(
        self, memory: DecoderMemory, exclude_keys: torch.Tensor | None, trie: torch.Tensor,
        child_slots: Sequence[torch.Tensor], beam_width: int, keep: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Constrained beam search over the code table: ``keep`` items per row, by log-prob.
        ``memory``: ``decoder_memory``'s. Each level decodes one position per beam, on the cache
        of the earlier ones."""

        def step(prefix: torch.Tensor, level: int, cache: Cache) -> tuple[torch.Tensor, Cache]:
            h, cache = self.decode(prefix, memory, cache)
            return self.heads[level](h[:, :, -1]), cache

        return constrained_beam_search(
            step, memory.users, self.level_sizes, max(self.level_sizes), trie, child_slots,
            exclude_keys, beam_width, keep,
            trained_items=self.fresh_from, fresh_weight=self.config.fresh_item_weight,
        )

    def level_code_vectors(self) -> list[torch.Tensor]:
        """Each level's code embeddings ``[V_l, d]``."""
        return list(self.code_emb.weight.split(self.level_sizes))


class TigerModel(nn.Module):
    """The trained model: a ``TigerGenerator`` and, with ``config.rerank``, a ``Reranker`` of
    its final beam. ``id_items``: how many items (the catalogue at training) get learned ID
    vectors in the re-ranker (0: codes only).

    State-dict keys are ``generator.*`` and ``reranker.*`` (the tuned re-ranking weight
    included); weights saved before the split (flat keys, the weight in the config) load too.
    """

    def __init__(self, config: GenerativeConfig, level_sizes: Sequence[int], id_items: int = 0) -> None:
        super().__init__()
        self.config = config
        self.generator = TigerGenerator(config, level_sizes)
        self.reranker = (
            Reranker(config.rerank, config.d_model, len(level_sizes), id_items, config.max_history)
            if config.rerank is not None else None
        )
        self.generator.init_embeddings()  # last, as ever: a seed gives the weights it always gave
        self.register_load_state_dict_pre_hook(_upgrade_older_weights)

    @classmethod
    def for_catalogue(cls, config: GenerativeConfig, level_sizes: Sequence[int], n_items: int) -> TigerModel:
        """A new model for a catalogue of ``n_items``: with the head's item IDs (``item_ids``), a row for each."""
        head = config.rerank
        return cls(config, level_sizes, id_items=n_items if head is not None and head.item_ids else 0)

    @classmethod
    def from_state_dict(
        cls, config: GenerativeConfig, level_sizes: Sequence[int], state: dict[str, Any]
    ) -> TigerModel:
        """A model holding saved weights (an artifact's ``model.pt``, a checkpoint's ``model``);
        whether it has a re-ranker (weights saved before the head was the default have none and a
        config without the key), the size of its ID table, where its user vector comes from, the width of
        its ID tower and the kind of encoder are read from them."""
        renamed = dict(state)
        _rename_flat_keys(renamed, "")
        update: dict[str, Any] = {"encoder": "causal" if "generator.distance_bias" in renamed else "bidirectional"}
        if not any(k.startswith("reranker.") for k in renamed):
            update["rerank"] = None
        elif config.rerank is not None:
            reads = any(k.startswith("reranker.history.") for k in renamed)
            tower = renamed.get("reranker.id_tower_emb.weight")
            update["rerank"] = config.rerank.model_copy(update={"user_state": "history" if reads else "encoder",
                                                                "id_tower": 0 if tower is None else tower.shape[1]})
        config = config.model_copy(update=update)
        ids = renamed.get("reranker.item_id_emb.weight")
        model = cls(config, level_sizes, id_items=0 if ids is None else int(ids.shape[0]))
        model.load_state_dict(state)
        return model

    @property
    def reranks(self) -> bool:
        """Whether inference re-orders the final beam (a re-ranker, with a non-zero weight)."""
        return self.reranker is not None and self.reranker.weight != 0

    def beam_width_for(self, top_k: int, asked: int | None = None) -> int:
        """The final beam's width for a ``top_k`` list: ``asked``, else the head's ``beam_width``,
        widened to the narrowest that still fills K slots. The head's own ``catalogue_top`` best items
        join the beam, none twice, so M >= K fills the list with a beam of any width; otherwise the
        beam itself must hold K."""
        if self.reranks and self.reranker.config.catalogue_top >= top_k:
            return max(int(asked or min(self.reranker.config.beam_width, top_k)), 1)
        return max(int(asked or top_k), top_k)

    def encode(
        self, history: torch.Tensor, item_codes: torch.Tensor, users: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator.encode(history, item_codes, users)

    def freeze_catalogue(self, item_codes: torch.Tensor, chunk: int = 1 << 15) -> None:
        """For serving: the re-ranker's item tower of every code, and when it scores the whole catalogue
        its vectors of the trained items ``item_codes [N0, levels]``, computed once
        (``Reranker.freeze_catalogue``, ``chunk`` items at a time)."""
        if self.reranker is not None:
            trained = item_codes if self.reranker.config.catalogue_top else item_codes[:0]
            self.reranker.freeze_catalogue(self.generator.level_code_vectors(), trained, chunk)

    def loss(
        self, history: torch.Tensor, targets: torch.Tensor, item_codes: torch.Tensor,
        users: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The generator's loss, plus the re-ranker's catalogue cross-entropy (weighted) when the
        model has one. ``history [B, L]``; ``targets``: ``[B]``, the item after each history, or (a
        causal encoder) ``[B, L]``, the item after each position (-1: none), every prefix of a
        sequence trained from one pass of the encoder."""
        if targets.dim() == 1:  # one target, after the last position
            targets = F.pad(targets[:, None], (history.shape[1] - 1, 0), value=-1)
        elif not self.generator.causal:
            raise ValueError("a target per position needs the causal encoder (the bidirectional one sees ahead)")
        memory, _ = self.generator.encode(history, item_codes, users)
        b_idx, t_idx, rows, states = self.generator.target_rows(memory, history, targets)
        target_items = targets[b_idx, t_idx]
        total = self.generator.loss(rows, item_codes[target_items])
        if self.reranker is not None:
            dense = self.reranker.loss(self.generator.level_code_vectors(), item_codes, target_items, states,
                                       history, b_idx * history.shape[1] + t_idx)
            total = total + self.reranker.config.loss_weight * dense
        return total

    def dense_user(self, memory: torch.Tensor, history: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
        """The re-ranker's vector ``[B, d]`` of the users with encoder ``memory`` and ``history [B, L]``."""
        if not self.reranker.reads_history:
            return self.reranker.user_vector(memory)
        idx = history.clamp(min=0)
        vectors = self.reranker.item_vectors(self.generator.level_code_vectors(), item_codes[idx], idx)
        return self.reranker.user_vector(memory, vectors, history >= 0)

    def dense_scores(
        self, memory: torch.Tensor, history: torch.Tensor, items: torch.Tensor, item_codes: torch.Tensor
    ) -> torch.Tensor:
        """The re-ranker's logits ``[B, W]`` of candidates ``items [B, W]`` (pad -1: any finite value)."""
        return self._dense_scores_of(self.dense_user(memory, history, item_codes), items, item_codes)

    def _dense_scores_of(self, user: torch.Tensor, items: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
        idx = items.clamp(min=0)
        return self.reranker.scores(user, self.generator.level_code_vectors(), item_codes[idx], idx)

    def scored_beam(
        self, memory: torch.Tensor, mask: torch.Tensor, history: torch.Tensor, exclude_keys: torch.Tensor | None,
        item_codes: torch.Tensor, trie: torch.Tensor, child_slots: Sequence[torch.Tensor], beam_width: int,
        excluded: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The final candidates ``[B, W (+ M)]`` of users with encoder ``memory`` and ``history``:
        items, generative log-probs and dense logits. The whole final beam; with the re-ranker's
        ``catalogue_top`` M, then its own best M items of the catalogue that are neither in the beam
        nor ``excluded [B, E]`` (item indices, pad -1; the items ``exclude_keys`` holds). A slot without
        an item holds -1 and log-prob -inf.

        A joining item's generative score is the beam's lowest: the search pruned its path, so its
        log-prob is below that nearly always, and the head orders the joining items among themselves.
        Its own log-prob, teacher-forced, took a decoder pass over M items that cost more than the
        search (a served call with a beam of 20, 10k items: 10.4 -> 5.9 ms) and ranked no better on
        Amazon Beauty and MovieLens-100K, 0.001-0.003 NDCG@10 better on the synthetic catalogue
        (bench/results/quality-joining-score-s31.md)."""
        decoder_memory = self.generator.decoder_memory(memory, mask)
        items, generative = self.generator.beam(decoder_memory, exclude_keys, trie, child_slots, beam_width,
                                                beam_width)
        user = self.dense_user(memory, history, item_codes)
        top = self.reranker.config.catalogue_top
        if not top:
            return items, generative, self._dense_scores_of(user, items, item_codes)
        if excluded is None and exclude_keys is not None:
            raise ValueError("the head's own candidates need the excluded items (excluded), not only their keys")
        every = self.reranker.catalogue_scores(user, self.generator.level_code_vectors(), item_codes,
                                               shortlist_room(top))  # [B, N + room]

        def exact(chosen: torch.Tensor) -> torch.Tensor:
            return self.reranker.exact_scores(user, chosen, every)

        dense = exact(items.clamp(min=0))
        extra, extra_dense = _best_unseen(every, items, excluded, top, exact)
        extra_generative = torch.where(extra >= 0, _lowest(generative), float("-inf"))
        return (torch.cat([items, extra], 1), torch.cat([generative, extra_generative], 1),
                torch.cat([dense, extra_dense], 1))

    def generate(
        self, memory: torch.Tensor, mask: torch.Tensor, history: torch.Tensor, exclude_keys: torch.Tensor | None,
        item_codes: torch.Tensor, trie: torch.Tensor, child_slots: Sequence[torch.Tensor], beam_width: int,
        top_k: int, excluded: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top ``top_k`` items and scores: the beam's order, or with a re-ranker its candidates
        (``scored_beam``) re-ordered (``reranks`` is static, so either way it is one graph)."""
        if not self.reranks:
            decoder_memory = self.generator.decoder_memory(memory, mask)
            return self.generator.beam(decoder_memory, exclude_keys, trie, child_slots, beam_width, top_k)
        beam = self.scored_beam(memory, mask, history, exclude_keys, item_codes, trie, child_slots, beam_width,
                                excluded)
        return self.reranker.rerank(*beam, top_k)


def _lowest(scores: torch.Tensor) -> torch.Tensor:
    """Each row's lowest finite score ``[B, 1]`` (-inf for a row without one)."""
    lowest = torch.where(torch.isfinite(scores), scores, float("inf")).amin(1, keepdim=True)
    return torch.where(torch.isfinite(lowest), lowest, float("-inf"))


def shortlist_room(top: int) -> int:
    """The -inf columns ``_best_unseen`` needs past the catalogue's: one for the pads of the excluded items,
    and as many as its shortlist, so that a catalogue smaller than that still fills it."""
    return ESTIMATE_SHORTLIST * top + 1


def _best_unseen(
    estimates: torch.Tensor, beam: torch.Tensor, excluded: torch.Tensor | None, top: int,
    exact: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``top`` best items ``[B, top]`` by exact score that are neither ``excluded`` nor in ``beam``,
    and their scores; -1 and score 0 where there are none (a small catalogue). ``estimates [B, n + room]``:
    each of the ``n`` items' score or an estimate of it, then ``shortlist_room(top)`` columns of -inf
    (``Reranker.catalogue_scores``); ``exact(items [B, K])``: the exact scores of valid items, taken for the
    best ``ESTIMATE_SHORTLIST * top`` estimates. Ties go to the lower index, as in a stable order of the
    whole row. Shapes do not depend on n (the room instead of ``min(width, n)``), so n stays dynamic in
    exported graphs."""
    width = ESTIMATE_SHORTLIST * top
    n = estimates.shape[1] - shortlist_room(top)
    masked = estimates
    if excluded is not None:  # their pads (-1) go to column n, the room's first
        gone = torch.where(excluded >= 0, excluded, torch.full_like(excluded, n))
        masked = masked.scatter(1, gone, torch.full_like(gone, float("-inf"), dtype=masked.dtype))
    # ties (an empty history's zero user) broken alike on every runtime
    _, shortlist = beam_search.stable_top(masked, width)
    shortlist, _ = torch.sort(shortlist, dim=1)  # index order, so a stable top of exact scores breaks ties by index
    estimate = masked.gather(1, shortlist)
    scores = torch.where(torch.isfinite(estimate), exact(shortlist.clamp(max=n - 1)), estimate)
    best, pick = beam_search.stable_top(scores, top)
    idx = shortlist.gather(1, pick)
    fresh = torch.isfinite(best) & ~(idx[:, :, None] == beam[:, None, :]).any(2)
    return torch.where(fresh, idx, torch.full_like(idx, -1)), torch.where(fresh, best, torch.zeros_like(best))


# The re-ranker's parts, which flat (pre-split) state dicts hold next to the generator's.
_RERANKER_PARTS = ("item_tower.", "user_tower.", "item_id_emb.")


def _rename_flat_keys(state: dict[str, Any], prefix: str) -> bool:
    """Move flat keys under ``prefix`` to ``generator.`` / ``reranker.``, in place; whether any were flat."""
    owners = (prefix + "generator.", prefix + "reranker.")
    flat = [k for k in state if k.startswith(prefix) and not k.startswith(owners)]
    for key in flat:
        rest = key[len(prefix):]
        owner = "reranker." if rest.startswith(_RERANKER_PARTS) else "generator."
        state[prefix + owner + rest] = state.pop(key)
    return bool(flat)


def _upgrade_older_weights(model: TigerModel, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load-state-dict pre-hook for weights saved by older versions. Those saved before
    ``trained_items`` existed count every item as trained; those saved before the ID tower's regions
    have none (its unknown items get the trained items' mean). Those saved before the split (flat
    keys) carry no re-ranking weight (it was in the config, from which this model's came), so
    the model keeps its own."""
    state.setdefault(prefix + "generator._extra_state", torch.tensor(EVERY_ITEM_TRAINED))
    if model.reranker is not None and model.reranker.id_width:
        state.setdefault(prefix + "reranker.id_tower_regions", model.reranker.id_tower_regions[:0])
    if _rename_flat_keys(state, prefix) and model.reranker is not None:
        state.setdefault(prefix + "reranker._extra_state", model.reranker.get_extra_state())


class GenerativeRecommender(nn.Module):
    """Encoder + decoder + constrained beam search: ``user_sequence -> (items, scores)``.

    The code table lives in non-persistent buffers (``CodeTable.tensors``: codes, keys, the
    prefix tree and its child slots) that :meth:`set_code_table` replaces at runtime, so
    a new item is generatable at once. ``forward`` has static shapes given (B, L) and no
    data-dependent Python branching, with a view to a single exported graph.
    """

    def __init__(
        self, model: TigerModel, table: CodeTable, top_k: int = TOP_K, beam_width: int | None = None,
        exclude_history: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.top_k = top_k
        self.beam_width = model.beam_width_for(top_k, beam_width)
        self.exclude_history = exclude_history
        self.level_sizes = list(table.level_sizes)
        self.sentinel = table.sentinel
        for name, t in table.tensors().items():
            self.register_buffer(name, t.clone(), persistent=False)

    def set_code_table(self, table: CodeTable) -> None:
        if list(table.level_sizes) != self.level_sizes:
            raise ValueError("code table has a different level layout")
        device = self.trie.device
        for name, t in table.tensors().items():
            setattr(self, name, t.to(device))

    def forward(
        self, user_sequence: torch.Tensor, users: torch.Tensor | None = None, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``user_sequence int64 [B, L]`` (pad -1) -> ``(items int64 [B, K], scores fp32 [B, K])``."""
        memory, mask = self.model.encode(user_sequence, self.item_codes, users)
        excluded = self._excluded(user_sequence, exclude)
        return self.model.generate(memory, mask, user_sequence, self._keys(excluded), self.item_codes, self.trie,
                                   self.child_slots, self.beam_width, self.top_k, excluded)

    def beam_with_dense_scores(
        self, user_sequence: torch.Tensor, users: torch.Tensor | None = None, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The final candidates ``[B, W (+ M)]`` (``TigerModel.scored_beam``): items, generative
        log-probs and the re-ranker's dense logits (the parts ``forward`` combines; training tunes
        the weight on them)."""
        memory, mask = self.model.encode(user_sequence, self.item_codes, users)
        excluded = self._excluded(user_sequence, exclude)
        return self.model.scored_beam(memory, mask, user_sequence, self._keys(excluded), self.item_codes,
                                      self.trie, self.child_slots, self.beam_width, excluded)

    @property
    def child_slots(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in slot_names(len(self.level_sizes)))

    def _excluded(self, user_sequence: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor | None:
        """The items no recommendation may hold ``[B, E]`` (pad -1), or None."""
        parts = ([user_sequence] if self.exclude_history else []) + ([exclude] if exclude is not None else [])
        return torch.cat(parts, dim=1) if parts else None

    def _keys(self, excluded: torch.Tensor | None) -> torch.Tensor | None:
        return None if excluded is None else exclusion_keys(excluded, self.item_keys, self.sentinel)
