"""TIGER-style generative retrieval: an encoder-decoder over Semantic-ID tokens.

Encoder input: one hashed user token, then the user's last N items, each represented by
the sum of the embeddings of its code tokens (one position per item keeps the cost
linear in N up to 1024 rather than N x levels) plus a position-from-the-end embedding.
Decoder: BOS then the target item's codes; a separate head per level predicts the next
code. Item vectors are built from codes only, so new items work without retraining.

Optional re-ranking head (``rerank_head``, a LIGER-style hybrid): the encoder's state at the
most recent item is scored against a vector composed from each item's codes by a small MLP, trained with a
softmax over the whole catalogue next to the generative loss. At inference it re-scores
the final beam (``generative log-prob + rerank_weight * dense logit``). Beam search and
the dense score see the catalogue differently (a prefix tree vs one vector per item) and
their errors differ; the dense loss is also the objective of the strongest ID-based
baselines. With ``rerank_item_ids`` items known at training also get a learned ID vector;
items added later are scored by their codes alone, so cold start is unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from genrec.config import MAX_HISTORY, MAX_SEQUENCE, TOP_K
from genrec.model.beam import constrained_beam_search, exclusion_keys
from genrec.model.code_table import CodeTable
from genrec.model.layers import DecoderLayer, EncoderLayer


class GenerativeConfig(BaseModel):
    d_model: int = 128
    n_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.1
    max_history: int = Field(default=MAX_HISTORY, ge=1, le=MAX_SEQUENCE)
    user_buckets: int = 2000  # hashed user tokens; bucket 0 is "anonymous"
    user_dropout: float = 0.1  # train-time chance of the anonymous token (serving may omit users)
    label_smoothing: float = 0.1
    rerank_head: bool = False  # dense full-catalogue head that re-scores the final beam
    rerank_loss_weight: float = 1.0  # its cross-entropy's weight next to the generative loss
    rerank_weight: float = 1.0  # inference: score = generative log-prob + this * dense logit
    # Add a learned per-item vector to the head's item vectors for the items known at training
    # (``rerank_id_items``, set by training). Items added later use their codes alone, which
    # ``rerank_id_dropout`` (a share of IDs hidden per step) trains for.
    rerank_item_ids: bool = False
    rerank_id_items: int = Field(default=0, ge=0)
    rerank_id_dropout: float = 0.1


def user_bucket(user_id: str, buckets: int) -> int:
    """Stable hash of a user id into ``1..buckets-1`` (0 is reserved for anonymous)."""
    if buckets <= 1:
        return 0
    return 1 + zlib.crc32(user_id.encode()) % (buckets - 1)


class TigerModel(nn.Module):
    def __init__(self, config: GenerativeConfig, level_sizes: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.level_sizes = [int(v) for v in level_sizes]
        d = config.d_model
        offsets = torch.tensor([0, *torch.tensor(self.level_sizes).cumsum(0).tolist()[:-1]], dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        self.code_emb = nn.Embedding(sum(self.level_sizes), d)
        self.user_emb = nn.Embedding(max(config.user_buckets, 1), d)
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
        self.drop = nn.Dropout(config.dropout)
        if config.rerank_head:
            # Concatenated (not summed) code embeddings through an MLP, so levels interact.
            n = len(self.level_sizes)
            self.item_tower = nn.Sequential(nn.Linear(n * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            self.user_tower = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
            if config.rerank_id_items:
                self.item_id_emb = nn.Embedding(config.rerank_id_items, d)
                nn.init.zeros_(self.item_id_emb.weight)  # a warm start begins from the code-only head
        nn.init.normal_(self.code_emb.weight, std=0.02)
        nn.init.normal_(self.bos, std=0.02)

    # ----------------------------------------------------------------- encoder
    def encode(
        self, history: torch.Tensor, item_codes: torch.Tensor, users: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``history [B, L]`` item indices (pad < 0, left-padded) -> memory, memory mask."""
        b, length = history.shape
        valid = history >= 0
        codes = item_codes[history.clamp(min=0)]  # [B, L, C]
        items = self.code_emb(codes + self.offsets).sum(2)
        # Position counted from the most recent item, so left padding never shifts it.
        pos = torch.arange(length - 1, -1, -1, device=history.device).clamp(max=self.config.max_history)
        items = items + self.pos_emb(pos)[None]
        if users is None:
            users = torch.zeros(b, dtype=torch.long, device=history.device)
        x = torch.cat([self.user_emb(users)[:, None], items], dim=1)
        mask = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)  # user token always visible
        attn_mask = mask[:, None, None, :]
        x = self.drop(x)
        for layer in self.encoder:
            x = layer(x, attn_mask)
        return self.enc_ln(x), attn_mask

    # ----------------------------------------------------------------- decoder
    def decode(self, prefix: torch.Tensor, memory: torch.Tensor, mem_mask: torch.Tensor) -> torch.Tensor:
        """``prefix [B, W, t]`` codes -> last hidden state ``[B, W, d]`` (predicts level t)."""
        b, w, t = prefix.shape
        x = self.bos.expand(b, w, 1, -1)
        if t:  # t is a static shape (the level), not data
            x = torch.cat([x, self.code_emb(prefix + self.offsets[:t])], dim=2)
        x = x + self.dec_pos.weight[: t + 1]
        x = self.drop(x.reshape(b * w, t + 1, -1))
        causal = torch.ones(t + 1, t + 1, dtype=torch.bool, device=x.device).tril()
        for layer in self.decoder:
            x = layer(x, memory, mem_mask, causal)
        return self.dec_ln(x).reshape(b, w, t + 1, -1)

    def loss(
        self, history: torch.Tensor, target_codes: torch.Tensor, item_codes: torch.Tensor,
        users: torch.Tensor | None = None, targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced cross-entropy summed over code levels (mean over the batch), plus
        the re-ranking head's catalogue cross-entropy when the model has one (``targets``:
        the target item indices)."""
        memory, mask = self.encode(history, item_codes, users)
        n = len(self.level_sizes)
        h = self.decode(target_codes[:, None, : n - 1], memory, mask)[:, 0]  # [B, n, d]
        total = history.new_zeros((), dtype=torch.float32)
        for lvl, head in enumerate(self.heads):
            logits = head(h[:, lvl]).float()
            total = total + F.cross_entropy(logits, target_codes[:, lvl], label_smoothing=self.config.label_smoothing)
        if self.has_rerank_head:
            if targets is None:
                raise ValueError("a model with a re-ranking head needs the target item indices")
            total = total + self.config.rerank_loss_weight * self.rerank_loss(memory, targets, item_codes)
        return total

    # ------------------------------------------------------------ dense head
    @property
    def has_rerank_head(self) -> bool:
        return self.config.rerank_head

    @property
    def reranks(self) -> bool:
        """Whether inference re-scores the final beam (a head, with a non-zero weight)."""
        return self.config.rerank_head and self.config.rerank_weight > 0

    def dense_scores(self, memory: torch.Tensor, items: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
        """Dense logits ``[B, W]`` of candidate ``items [B, W]`` (pad -1: any finite value).
        A per-user normaliser would not change any order, so none is applied."""
        idx = items.clamp(min=0)
        cand = self.item_vectors(item_codes[idx], idx)  # [B, W, d]
        return (cand @ self.user_vector(memory)[:, :, None]).squeeze(-1).float()

    def item_vectors(self, codes: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """``codes [..., levels]`` (of item indices ``items``) -> dense item vectors ``[..., d]``.
        Items the ID table does not know (added after training) get their codes' vector."""
        vec = self.item_tower(self.code_emb(codes + self.offsets).flatten(-2))
        n_ids = self.config.rerank_id_items
        if n_ids and items is not None:
            known = (items < n_ids)[..., None]
            vec = vec + torch.where(known, self.item_id_emb(items.clamp(max=n_ids - 1)), torch.zeros_like(vec))
        return vec

    def user_vector(self, memory: torch.Tensor) -> torch.Tensor:
        """The encoder state at the most recent item (histories are left-padded)."""
        return self.user_tower(memory[:, -1])

    def rerank_loss(self, memory: torch.Tensor, targets: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy of the target item against the whole catalogue."""
        n = item_codes.shape[0]
        items = torch.arange(n, device=item_codes.device)
        if self.training and self.config.rerank_id_items and self.config.rerank_id_dropout > 0:
            # Hide some items' IDs each step, so the code-only vector of a new item is trained too.
            hidden = torch.rand(n, device=items.device) < self.config.rerank_id_dropout
            items = torch.where(hidden, torch.full_like(items, self.config.rerank_id_items), items)
        logits = self.user_vector(memory) @ self.item_vectors(item_codes, items).T
        return F.cross_entropy(logits.float(), targets)

    def step_logits(self, prefix: torch.Tensor, level: int, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.decode(prefix, memory, mask)[:, :, -1]
        return self.heads[level](h)

    # ---------------------------------------------------------------- search
    def beam(
        self, memory: torch.Tensor, mask: torch.Tensor, exclude_keys: torch.Tensor | None,
        sorted_keys: torch.Tensor, sorted_items: torch.Tensor, beam_width: int, keep: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Constrained beam search over the code table: ``keep`` items per row, by log-prob."""
        return constrained_beam_search(
            lambda prefix, level: self.step_logits(prefix, level, memory, mask), memory.shape[0],
            self.level_sizes, max(self.level_sizes), sorted_keys, sorted_items, exclude_keys, beam_width, keep,
        )

    def generate(
        self, memory: torch.Tensor, mask: torch.Tensor, exclude_keys: torch.Tensor | None,
        item_codes: torch.Tensor, sorted_keys: torch.Tensor, sorted_items: torch.Tensor, beam_width: int, top_k: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top ``top_k`` items and scores: the beam's order, or with a re-ranking head the
        whole final beam re-scored (``reranks`` is static, so either way it is one graph)."""
        if not self.reranks:
            return self.beam(memory, mask, exclude_keys, sorted_keys, sorted_items, beam_width, top_k)
        items, generative = self.beam(memory, mask, exclude_keys, sorted_keys, sorted_items, beam_width, beam_width)
        dense = self.dense_scores(memory, items, item_codes)
        return rerank(items, generative, dense, self.config.rerank_weight, top_k)


def rerank(
    items: torch.Tensor, generative: torch.Tensor, dense: torch.Tensor, weight: float, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Order a final beam by ``generative + weight * dense`` and keep ``top_k``; unfilled
    slots (score -inf) stay last."""
    combined, order = torch.sort(generative + weight * dense, dim=1, descending=True, stable=True)
    return torch.gather(items, 1, order[:, :top_k]), combined[:, :top_k]


class GenerativeRecommender(nn.Module):
    """Encoder + decoder + constrained beam search: ``user_sequence -> (items, scores)``.

    The code table lives in non-persistent buffers (``item_codes``, ``item_keys``,
    ``sorted_keys``, ``sorted_items``) that :meth:`set_code_table` replaces at runtime, so
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
        self.beam_width = max(beam_width or top_k, top_k)
        self.exclude_history = exclude_history
        self.level_sizes = list(table.level_sizes)
        self.sentinel = table.sentinel
        for name, t in table.tensors().items():
            self.register_buffer(name, t.clone(), persistent=False)

    def set_code_table(self, table: CodeTable) -> None:
        if list(table.level_sizes) != self.level_sizes:
            raise ValueError("code table has a different level layout")
        device = self.sorted_keys.device
        for name, t in table.tensors().items():
            setattr(self, name, t.to(device))

    def forward(
        self, user_sequence: torch.Tensor, users: torch.Tensor | None = None, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``user_sequence int64 [B, L]`` (pad -1) -> ``(items int64 [B, K], scores fp32 [B, K])``."""
        memory, mask = self.model.encode(user_sequence, self.item_codes, users)
        return self.model.generate(memory, mask, self._exclusions(user_sequence, exclude), self.item_codes,
                                   self.sorted_keys, self.sorted_items, self.beam_width, self.top_k)

    def beam_with_dense_scores(
        self, user_sequence: torch.Tensor, users: torch.Tensor | None = None, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The whole final beam ``[B, W]``: items, generative log-probs and the re-ranking
        head's dense logits (the parts ``forward`` combines; training tunes the weight on them)."""
        memory, mask = self.model.encode(user_sequence, self.item_codes, users)
        items, generative = self.model.beam(memory, mask, self._exclusions(user_sequence, exclude),
                                            self.sorted_keys, self.sorted_items, self.beam_width, self.beam_width)
        return items, generative, self.model.dense_scores(memory, items, self.item_codes)

    def _exclusions(self, user_sequence: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor | None:
        parts = ([user_sequence] if self.exclude_history else []) + ([exclude] if exclude is not None else [])
        return exclusion_keys(torch.cat(parts, dim=1), self.item_keys, self.sentinel) if parts else None
