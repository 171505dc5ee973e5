"""The compute floor: the least CPU time one user's request could cost on this machine.

Two measurements. (a) The FLOPs of a request, counted by ``FlopCounterMode`` on the real
serving graph: matrix products and attention (2 FLOPs a multiply-add), the work a CPU does
at its best speed; the rest (searches, sorts, elementwise ops, dispatch) is what a server
spends above the floor. (b) The fp32 matrix-product throughput this CPU achieves: a short
``torch.mm`` loop at the shape of the model's largest decoder GEMM (``[beams, d_model] x
[d_model, d_ff]``), on one thread and on all. ``flops / throughput`` is the floor: the time
of a server that did nothing but those products at full speed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from genrec.model.flops import count_flops
from genrec.serving.graph import ServingGraph, TableTensors


def request_inputs(table: TableTensors, batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A request as the serving benchmark sends it: ``batch`` full histories of ``length`` items,
    anonymous users, nothing extra excluded; on the table's device."""
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same request on any device
    seq = torch.randint(0, table.n_items, (batch, length), generator=g)
    tok = torch.zeros(batch, 1, dtype=torch.int64)
    exclude = torch.full((batch, 1), -1, dtype=torch.int64)
    tensors = table.as_tuple()
    return (*(t.to(tensors[0].device) for t in (seq, tok, exclude)), *tensors)


def flops_per_user(graph: ServingGraph, table: TableTensors, length: int, batch: int = 1) -> float:
    return count_flops(graph, *request_inputs(table, batch, length)) / batch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def matmul_gflops(m: int, k: int, n: int, threads: int, seconds: float = 0.5, rounds: int = 5) -> float:
    """fp32 ``[m, k] x [k, n]`` products per second on ``threads`` threads, in GFLOP/s: the best of
    ``rounds`` short loops (the best is what the CPU can do; a shared machine only lowers it)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    best = 0.0
    with torch_threads(threads), torch.inference_mode():
        for _ in range(3):
            torch.mm(a, b, out=out)  # warm-up: thread pool, caches
        for _ in range(rounds):
            calls, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds / rounds:
                torch.mm(a, b, out=out)
                calls += 1
            best = max(best, 2 * m * k * n * calls / elapsed / 1e9)
    return best


@dataclass(frozen=True)
class ComputeFloor:
    """FLOPs of a request per user and the matmul throughput measured, by thread count."""

    flops_per_user: float
    batch: int  # the request the FLOPs were counted on
    gemm: tuple[int, int, int]  # the [m, k] x [k, n] product timed
    gflops: dict[int, float]  # threads -> GFLOP/s

    def ms_per_user(self, threads: int) -> float:
        return self.flops_per_user / (self.gflops[threads] * 1e9) * 1e3

    def users_per_s(self, threads: int) -> float:
        return 1e3 / self.ms_per_user(threads)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gflops"] = {str(t): round(g, 1) for t, g in self.gflops.items()}
        out["floor"] = {
            str(t): {"ms_per_user": round(self.ms_per_user(t), 3), "users_per_s": round(self.users_per_s(t), 1)}
            for t in self.gflops
        }
        return out


def compute_floor(
    graph: ServingGraph, table: TableTensors, length: int, *, batch: int = 1, threads: int = 0,
    seconds: float = 0.5,
) -> ComputeFloor:
    """The floor of ``graph`` for requests of ``batch`` users with ``length`` items of history, on
    one thread and on ``threads`` (0: every core)."""
    flops = flops_per_user(graph, table, length, batch)
    gen = graph.model.generator
    gemm = (graph.beam_width * batch, gen.config.d_model, gen.config.d_ff)
    counts = sorted({1, threads or os.cpu_count() or 1})
    return ComputeFloor(flops, batch, gemm, {t: matmul_gflops(*gemm, threads=t, seconds=seconds) for t in counts})
