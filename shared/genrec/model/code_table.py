"""The valid-code table: which code tuples are real items, as plain tensors.

Each item's code tuple is packed into one int64 key (mixed radix ``base``). Keeping the
keys sorted turns "which items start with this prefix" into a contiguous range that
``torch.searchsorted`` finds in O(log N), so constrained decoding needs no dense
``V^L`` mask and scales to millions of items. The table is data: adding items rebuilds
three tensors and the new items are generatable immediately, with no retraining.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pack_codes(codes: torch.Tensor, base: int) -> torch.Tensor:
    """``[..., C]`` codes -> ``[...]`` int64 keys (first level most significant)."""
    c = codes.shape[-1]
    weights = torch.tensor([base ** (c - 1 - i) for i in range(c)], dtype=torch.int64, device=codes.device)
    return (codes.long() * weights).sum(-1)


def key_sentinel(level_sizes: Sequence[int]) -> int:
    """A key larger than every real key of this level layout (pads key lists; no prefix range counts it)."""
    return max(level_sizes) ** len(level_sizes)


class CodeTable:
    """Item index -> code tuple, plus the sorted key index used by beam search.

    Attributes (all tensors, on ``device``):
      item_codes   int64 [N, C]  codes of item i (row i = dense item index i)
      item_keys    int64 [N]     packed key of item i
      sorted_keys  int64 [N]     item_keys sorted ascending (unique)
      sorted_items int64 [N]     item index for each sorted key
    """

    def __init__(self, item_codes: torch.Tensor, level_sizes: Sequence[int]) -> None:
        self.level_sizes = [int(v) for v in level_sizes]
        self.base = max(self.level_sizes)
        if self.base ** len(self.level_sizes) >= 2**62:
            raise ValueError("code space too large to pack into int64 keys")
        codes = torch.as_tensor(item_codes, dtype=torch.int64)
        if codes.ndim != 2 or codes.shape[1] != len(self.level_sizes):
            raise ValueError(f"item_codes must be [N, {len(self.level_sizes)}], got {tuple(codes.shape)}")
        self.item_codes = codes
        self._rebuild()

    @property
    def n_items(self) -> int:
        return int(self.item_codes.shape[0])

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def sentinel(self) -> int:
        """A key larger than every real key (used to pad exclusion lists)."""
        return key_sentinel(self.level_sizes)

    def _rebuild(self) -> None:
        sizes = torch.tensor(self.level_sizes, device=self.item_codes.device)
        if len(self.item_codes) and ((self.item_codes < 0) | (self.item_codes >= sizes)).any():
            raise ValueError("a code is outside its level's vocabulary")
        self.item_keys = pack_codes(self.item_codes, self.base)
        order = torch.argsort(self.item_keys, stable=True)
        self.sorted_keys = self.item_keys[order].contiguous()
        self.sorted_items = order.contiguous()
        if len(order) > 1 and bool((self.sorted_keys[1:] == self.sorted_keys[:-1]).any()):
            raise ValueError("two items share a code tuple; codes must be unique")

    def add_items(self, codes: torch.Tensor) -> torch.Tensor:
        """Append items (new dense indices N, N+1, ...) and return their indices."""
        codes = torch.as_tensor(codes, dtype=torch.int64, device=self.item_codes.device).reshape(-1, self.n_levels)
        start = self.n_items
        old = self.item_codes
        self.item_codes = torch.cat([old, codes])
        try:
            self._rebuild()
        except ValueError:
            self.item_codes = old
            self._rebuild()
            raise
        return torch.arange(start, self.n_items, device=codes.device)

    def to(self, device: torch.device | str) -> CodeTable:
        out = CodeTable.__new__(CodeTable)
        out.level_sizes, out.base = self.level_sizes, self.base
        for name in ("item_codes", "item_keys", "sorted_keys", "sorted_items"):
            setattr(out, name, getattr(self, name).to(device))
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "item_codes": self.item_codes,
            "item_keys": self.item_keys,
            "sorted_keys": self.sorted_keys,
            "sorted_items": self.sorted_items,
        }
