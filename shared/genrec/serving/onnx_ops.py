"""ONNX has no stable sort: equivalents made of ops it has, for the exported graph.

``torch.sort`` becomes a full-length ``topk``: ONNX TopK breaks ties by the lower index,
which is exactly the stable order beam search relies on. ``torch.gather`` on an empty
tensor becomes an empty constant (ONNX Runtime rejects that GatherElements).

Used only while exporting (``onnx_compatible_ops``): beam search calls these through the
``torch`` module, so the swap reaches it without a change to ``genrec.model.beam``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


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
def onnx_compatible_ops() -> Iterator[None]:
    saved = torch.sort, torch.gather
    torch.sort, torch.gather = topk_sort, empty_safe_gather  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.sort, torch.gather = saved  # type: ignore[assignment]
