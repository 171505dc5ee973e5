"""ONNX has no stable sort: equivalents made of ops it has, for the exported graph; and the re-ranking
head's product over the frozen catalogue in int8.

``torch.sort`` becomes a full-length ``topk``, and ``genrec.model.beam.stable_top`` (about 25 ops
in torch, which breaks ties as it likes) one ``topk``: ONNX TopK breaks ties by the lower index,
which is exactly the stable order beam search relies on. ``torch.gather`` on an empty
tensor becomes an empty constant (ONNX Runtime rejects that GatherElements).

The head's int8 product over the frozen items (``genrec.model.rerank.int8_product``) becomes
``MatMulInteger``, the users shifted to unsigned bytes around a zero point of 64 (ONNX Runtime's
fast kernel is unsigned by signed): the same integers as torch's float product, a quarter of the bytes.

Used only while exporting (``onnx_compatible_ops``): beam search and the head call these through the
``torch`` module, ``genrec.model.beam`` and ``genrec.model.rerank``, so the swap reaches them without a
change to either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.onnx import TensorProtoDataType

from genrec.model import beam, rerank


def topk_sort(
    input: torch.Tensor, dim: int = -1, descending: bool = False, stable: bool = False, **_: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.sort`` as a full-length TopK (ties keep index order, as a stable sort)."""
    return torch.topk(input, input.shape[dim], dim=dim, largest=descending, sorted=True)


def onnx_stable_top(total: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``stable_top`` as one TopK (ties by the lower index in ONNX). A served call of the demo model
    makes six selections: ~200 of its ~2,000 nodes after ONNX Runtime's optimisation were theirs."""
    return torch.topk(total, keep, dim=1)


_torch_gather = torch.gather


def empty_safe_gather(input: torch.Tensor, dim: int, index: torch.Tensor, **kw: object) -> torch.Tensor:
    """``torch.gather``, except on a statically empty input (beam search's level-0 prefix
    ``[B, 1, 0]``), where ONNX Runtime rejects GatherElements: the result is empty too."""
    if any(isinstance(d, int) and d == 0 for d in input.shape):
        return torch.zeros(index.shape, dtype=input.dtype, device=input.device)
    return _torch_gather(input, dim, index, **kw)


class Int8Product(torch.autograd.Function):
    """``int8_product``: a float product in torch, ``MatMulInteger`` in the exported graph."""

    @staticmethod
    def forward(ctx: object, quantised: torch.Tensor, int8_columns: torch.Tensor) -> torch.Tensor:
        return _int8_product(quantised, int8_columns)

    @staticmethod
    def symbolic(g: object, quantised: object, int8_columns: object) -> object:
        zero_point = g.op("Constant", value_t=torch.tensor(64, dtype=torch.uint8))
        shifted = g.op("Add", quantised, g.op("Constant", value_t=torch.tensor(64.0)))
        unsigned = g.op("Cast", shifted, to_i=int(TensorProtoDataType.UINT8))
        product = g.op("MatMulInteger", unsigned, int8_columns, zero_point)
        return g.op("Cast", product, to_i=int(TensorProtoDataType.FLOAT))


_int8_product = rerank.int8_product


@contextlib.contextmanager
def onnx_compatible_ops() -> Iterator[None]:
    saved = torch.sort, torch.gather, beam.stable_top, rerank.int8_product
    torch.sort, torch.gather = topk_sort, empty_safe_gather  # type: ignore[assignment]
    beam.stable_top = onnx_stable_top
    rerank.int8_product = Int8Product.apply
    try:
        yield
    finally:
        torch.sort, torch.gather, beam.stable_top, rerank.int8_product = saved  # type: ignore[assignment]
