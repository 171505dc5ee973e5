"""FLOPs of model code, counted by torch's ``FlopCounterMode`` on the real calls: matrix products
and attention (2 FLOPs a multiply-add), forward and, in a training step, backward; what a CPU or
GPU does at its best speed. Elementwise ops, searches and sorts are not counted: they are what a
program spends above its floor. So a decoder step's self-attention, one query over a handful of positions
computed with products and sums (``genrec.model.layers.one_query_attention``), is not counted either (0.2 %
of a production-size served call). The serving floor and the training cost both count with this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def _sdpa(query: torch.Size, key: torch.Size, value: torch.Size, *_: Any, **__: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_backward(grad: torch.Size, query: torch.Size, key: torch.Size, value: torch.Size, *_: Any, **__: Any
                   ) -> int:
    return sdpa_backward_flop_count(grad, query, key, value)


def _cpu_attention() -> dict[Any, Callable[..., int]]:
    """CPU attention's kernels, which the counter's own table lacks (it knows the CUDA ones)."""
    kernels = {"_scaled_dot_product_flash_attention_for_cpu": _sdpa,
               "_scaled_dot_product_flash_attention_for_cpu_backward": _sdpa_backward}
    return {getattr(torch.ops.aten, name): count for name, count in kernels.items()
            if hasattr(torch.ops.aten, name)}


def flop_counter() -> FlopCounterMode:
    """A counter for any block of model code: ``with flop_counter() as c: ...; c.get_total_flops()``."""
    return FlopCounterMode(display=False, custom_mapping=_cpu_attention())


def count_flops(fn: Callable[..., Any], *inputs: Any) -> int:
    """FLOPs of one inference call ``fn(*inputs)``."""
    with torch.inference_mode(), flop_counter() as counter:
        fn(*inputs)
    return counter.get_total_flops()
