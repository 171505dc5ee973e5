"""ONNX has no stable sort: equivalents made of ops it has, for the exported graph; and the re-ranking
head's product over the frozen catalogue in int8.

``torch.sort`` becomes a full-length ``topk``: ONNX TopK breaks ties by the lower index,
which is exactly the stable order beam search relies on. ``torch.gather`` on an empty
tensor becomes an empty constant (ONNX Runtime rejects that GatherElements).

The head's logits of the frozen items (``genrec.model.rerank.frozen_estimates``) become ONNX's
int8 product: the users quantised together (``DynamicQuantizeLinear``, unsigned: ONNX Runtime's
fast kernel), the items per item, ``MatMulInteger``, then the two scales. A quarter of the bytes
read per call; the head scores its shortlist of them exactly (``Reranker.exact_scores``).

Used only while exporting (``onnx_compatible_ops``): beam search and the head call these through the
``torch`` module and ``genrec.model.rerank``, so the swap reaches them without a change to either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.onnx import TensorProtoDataType

from genrec.model import rerank


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


class Int8Estimates(torch.autograd.Function):
    """``frozen_estimates``: exact in torch, an int8 product in the exported graph."""

    @staticmethod
    def forward(ctx: object, user: torch.Tensor, rows: torch.Tensor, int8_columns: torch.Tensor,
                scales: torch.Tensor) -> torch.Tensor:
        return _frozen_estimates(user, rows, int8_columns, scales)

    @staticmethod
    def symbolic(g: object, user: object, rows: object, int8_columns: object, scales: object) -> object:
        quantised, user_scale, zero_point = g.op("DynamicQuantizeLinear", user, outputs=3)
        product = g.op("MatMulInteger", quantised, int8_columns, zero_point)
        as_float = g.op("Cast", product, to_i=int(TensorProtoDataType.FLOAT))
        return g.op("Mul", as_float, g.op("Mul", user_scale, scales))


_frozen_estimates = rerank.frozen_estimates


@contextlib.contextmanager
def onnx_compatible_ops() -> Iterator[None]:
    saved = torch.sort, torch.gather, rerank.frozen_estimates
    torch.sort, torch.gather = topk_sort, empty_safe_gather  # type: ignore[assignment]
    rerank.frozen_estimates = Int8Estimates.apply
    try:
        yield
    finally:
        torch.sort, torch.gather, rerank.frozen_estimates = saved  # type: ignore[assignment]
