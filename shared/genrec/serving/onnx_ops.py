"""ONNX has no ``searchsorted`` (nor a stable sort): equivalents made of ops it has.

``unrolled_searchsorted`` is a branch-free binary search with a fixed number of steps
(power-of-two strides, 8 elementwise ops each), so the exported graph stays O(log N) per
query and works for any table size up to the capacity it was exported for. A dense
"compare with every key and sum" would be exact too, but costs O(N) memory per query:
hopeless at a million items. The step count is static, so it is chosen from a capacity
(``max_items``, the catalogue's size); every unrolled step is graph size and export time.
Beam search only searches 1-D sequences (the catalogue, fresh items).

``torch.sort`` becomes a full-length ``topk``: ONNX TopK breaks ties by the lower index,
which is exactly the stable order beam search relies on. ``torch.gather`` on an empty
tensor becomes an empty constant (ONNX Runtime rejects that GatherElements).

Used only while exporting (``onnx_compatible_ops``): beam search calls these through the
``torch`` module, so the swap reaches it without a change to ``genrec.model.beam``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch


def steps_for(capacity: int) -> int:
    """Halvings needed to search ``capacity`` sorted keys exactly."""
    return max(1, math.ceil(math.log2(capacity + 1)))


def unrolled_searchsorted(
    sorted_sequence: torch.Tensor, values: torch.Tensor, *, right: bool = False, steps: int = 32, **_: object,
) -> torch.Tensor:
    """Same result as ``torch.searchsorted`` for a 1-D sorted input shorter than ``2**steps``."""
    n = sorted_sequence.shape[-1]
    pos = torch.zeros_like(values, dtype=torch.int64)
    for k in range(steps, 0, -1):
        cand = pos + (1 << (k - 1))
        probe = sorted_sequence[(cand - 1).clamp(max=n - 1)]
        below = (probe <= values) if right else (probe < values)
        pos = torch.where(below & (cand <= n), cand, pos)
    return pos


def topk_sort(
    input: torch.Tensor, dim: int = -1, descending: bool = False, stable: bool = False, **_: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.sort`` as a full-length TopK (ties keep index order, as a stable sort)."""
    return torch.topk(input, input.shape[dim], dim=dim, largest=descending, sorted=True)


_torch_gather = torch.gather


def empty_safe_gather(input: torch.Tensor, dim: int, index: torch.Tensor, **kw: object) -> torch.Tensor:
    """``torch.gather``, except on a statically empty input (beam search's level-0 prefix
    ``[B, 1, 0]``), where ONNX Runtime rejects GatherElements: the result is empty too."""
    if any(isinstance(d, int) and d == 0 for d in input.shape):
        return torch.zeros(index.shape, dtype=input.dtype, device=input.device)
    return _torch_gather(input, dim, index, **kw)


@contextlib.contextmanager
def onnx_compatible_ops(max_items: int = 2**24) -> Iterator[None]:
    steps = steps_for(max_items)

    def searchsorted(sorted_sequence: torch.Tensor, values: torch.Tensor, **kw: object) -> torch.Tensor:
        return unrolled_searchsorted(sorted_sequence, values, steps=steps, **kw)

    saved = torch.searchsorted, torch.sort, torch.gather
    torch.searchsorted, torch.sort, torch.gather = searchsorted, topk_sort, empty_safe_gather  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.searchsorted, torch.sort, torch.gather = saved  # type: ignore[assignment]
