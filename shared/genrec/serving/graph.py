"""The one serving graph: encoder + decoder + constrained beam search, table as inputs.

``GenerativeRecommender`` keeps the valid-code table in buffers; for serving the table is
*data* passed on every call instead, so that (a) an exported graph never bakes in the
catalogue and items fed after export are generatable, and (b) swapping in a bigger table
is one reference assignment in the server (no half-updated buffers under concurrency).

Inputs (all int64): ``user_sequence [B, L]`` (pad -1), ``user_token [B, 1]`` (hashed user
bucket, 0 = anonymous), ``exclude [B, E]`` (pad -1), then the ``CodeTable`` tensors: codes and
keys by item ``[N, C]``, ``[N]``, the prefix tree ``[4, M + 1]`` and, one per level, its child
slots ``slots_<level> [F]`` (F: the most children a node of that level has).
Outputs: ``recommendations int64 [B, K]``, ``scores fp32 [B, K]`` (log-probabilities, plus
the weighted dense logit when the model has a re-ranker; descending; -1 / -inf where
fewer than K items remain).

A re-ranker that adds its own best items of the catalogue (``catalogue_top``) holds the trained
items' vectors as a constant of the graph (``build_model`` freezes them): the table's first rows
are always those items, so per call only the items fed since are built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genrec.config import TOP_K
from genrec.model.beam import exclusion_keys
from genrec.model.code_table import CodeTable, key_sentinel, slot_names
from genrec.model.generative import GenerativeConfig, TigerModel
from genrec.serving.artifact import ServingArtifact

REQUEST_INPUTS = ("user_sequence", "user_token", "exclude")
TABLE_INPUTS = ("item_codes", "item_keys", "trie")  # then the child slots, one per level
OUTPUT_NAMES = ("recommendations", "scores")


def input_names(n_levels: int) -> tuple[str, ...]:
    """The graph's inputs, in order, for a code layout of ``n_levels`` levels."""
    return (*REQUEST_INPUTS, *TABLE_INPUTS, *slot_names(n_levels))


def dynamic_axes(n_levels: int) -> dict[str, dict[int, str]]:
    """Which axes of each input vary from call to call, by name (an axis of the same name has the
    same size in every input): what an exported graph must keep symbolic."""
    return {"user_sequence": {0: "batch", 1: "length"}, "user_token": {0: "batch"},
            "exclude": {0: "batch", 1: "excluded"}, "item_codes": {0: "items"}, "item_keys": {0: "items"},
            "trie": {1: "nodes"}, **{name: {0: f"fanout_{level}"} for level, name in enumerate(slot_names(n_levels))}}


@dataclass(frozen=True)
class TableTensors:
    """An immutable snapshot of the code table as the graph's table inputs."""

    item_codes: torch.Tensor
    item_keys: torch.Tensor
    trie: torch.Tensor
    slots: tuple[torch.Tensor, ...]

    @classmethod
    def from_table(cls, table: CodeTable, device: torch.device | str = "cpu") -> TableTensors:
        t = {name: v.to(device).contiguous() for name, v in table.tensors().items()}
        return cls(*(t[name] for name in TABLE_INPUTS), tuple(t[name] for name in slot_names(table.n_levels)))

    @property
    def n_items(self) -> int:
        return int(self.item_codes.shape[0])

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return (self.item_codes, self.item_keys, self.trie, *self.slots)


class ServingGraph(nn.Module):
    def __init__(self, model: TigerModel, level_sizes: list[int], top_k: int = TOP_K, beam_width: int | None = None):
        super().__init__()
        self.model = model.eval()
        self.level_sizes = [int(v) for v in level_sizes]
        self.sentinel = key_sentinel(self.level_sizes)
        self.top_k = int(top_k)
        self.beam_width = model.beam_width_for(self.top_k, beam_width)

    def forward(
        self,
        user_sequence: torch.Tensor,
        user_token: torch.Tensor,
        exclude: torch.Tensor,
        item_codes: torch.Tensor,
        item_keys: torch.Tensor,
        trie: torch.Tensor,
        *slots: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        memory, mask = self.model.encode(user_sequence, item_codes, user_token.reshape(-1))
        # History is always excluded; `exclude` adds more (pad -1 adds nothing).
        excluded = torch.cat([user_sequence, exclude], dim=1)
        items, scores = self.model.generate(
            memory, mask, user_sequence, exclusion_keys(excluded, item_keys, self.sentinel), item_codes, trie, slots,
            self.beam_width, self.top_k, excluded,
        )
        return items, scores.float()


def build_model(art: ServingArtifact, device: torch.device | str = "cpu") -> TigerModel:
    """The artifact's model, ready to serve: weights loaded, the trained items' re-ranker vectors frozen."""
    state = torch.load(art.weights_path, map_location="cpu", weights_only=True)
    model = TigerModel.from_state_dict(GenerativeConfig.model_validate(art.model_config), art.level_sizes, state)
    model = model.to(device).eval()
    model.freeze_catalogue(torch.as_tensor(art.item_codes, device=device))  # the codes alone: no prefix tree
    return model


def build_graph(
    art: ServingArtifact, top_k: int = TOP_K, beam_width: int | None = None, device: torch.device | str = "cpu"
) -> ServingGraph:
    return ServingGraph(build_model(art, device), art.level_sizes, top_k, beam_width).eval()


def base_table(art: ServingArtifact) -> CodeTable:
    return CodeTable(torch.as_tensor(art.item_codes), art.level_sizes)


def extend_table(table: CodeTable, codes: np.ndarray | torch.Tensor) -> CodeTable:
    """A *new* table with ``codes`` appended (the old one stays valid for in-flight calls)."""
    extra = torch.as_tensor(np.asarray(codes), dtype=torch.int64).reshape(-1, table.n_levels)
    return CodeTable(torch.cat([table.item_codes.cpu(), extra]), table.level_sizes)


def example_inputs(
    table: TableTensors, batch: int = 2, length: int = 8, excluded: int = 2, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random valid inputs (for tracing, warm-up and parity checks), on the table's device."""
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same inputs on any device
    n = table.n_items
    seq = torch.randint(0, n, (batch, length), generator=g)
    if length > 1:
        seq[0, : length // 2] = -1  # a short, left-padded history
    tok = torch.zeros(batch, 1, dtype=torch.int64)
    excl = torch.full((batch, excluded), -1, dtype=torch.int64)
    excl[:, 0] = torch.randint(0, n, (batch,), generator=g)
    tensors = table.as_tuple()
    return (*(t.to(tensors[0].device) for t in (seq, tok, excl)), *tensors)


def check_capacity(path: Path, inputs: tuple[torch.Tensor, ...]) -> None:
    """ONNX / TensorRT graphs were exported for tables and exclusion lists of bounded size (their
    dynamic dimensions' bounds; TensorRT's optimisation profile rejects larger ones)."""
    meta = path.with_suffix(".json")
    if not meta.exists():
        return
    cap = json.loads(meta.read_text())
    n_items = int(inputs[len(REQUEST_INPUTS) + TABLE_INPUTS.index("item_codes")].shape[0])
    width = int(inputs[0].shape[1] + inputs[2].shape[1])
    if n_items > cap["max_items"] or width > cap["max_excluded"]:
        raise RuntimeError(
            f"{path.name} was exported for at most {cap['max_items']} items and {cap['max_excluded']} history + "
            f"exclude columns, got {n_items} and {width}: re-export with a larger --max-items"
        )
