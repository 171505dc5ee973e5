"""The text model's share of ingest, stated as a floor: the FLOPs of embedding one item's text
(counted by ``FlopCounterMode``, as the serving floor counts a request), the time one core takes
to embed it the way cold-start-embedding does (``event_path_embedder``: one torch thread, bf16
where the CPU has it natively), and the items per second that allows with every core of the
machine doing nothing else."""

from __future__ import annotations

import os
import time
from typing import Any

from genrec.model.flops import count_flops
from genrec.serving.floor import matmul_gflops


def text_model_floor(texts: list[str], rounds: int = 3) -> dict[str, Any]:
    from genrec.apps.cold_start import event_path_embedder
    from genrec.embeddings.text import DIM

    embedder = event_path_embedder(workers=1)  # one core's time per text
    embedder.load()
    embedder.encode(texts[:8], progress=False)  # warm-up
    flops = count_flops(lambda: embedder.encode(texts, progress=False)) / len(texts)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        embedder.encode(texts, progress=False)
        best = min(best, (time.process_time() - start) / len(texts))
    tokens = len(embedder.load().tokenizer(texts[:1])["input_ids"][0])
    gflops = matmul_gflops(64 * tokens, DIM, 4 * DIM, threads=1)  # the feed-forward product of a batch
    cores = os.cpu_count() or 1
    return {
        "texts": len(texts), "bf16": embedder.bf16, "gflop_per_item": round(flops / 1e9, 3),
        "cpu_ms_per_item": round(best * 1000, 2), "fp32_gemm_gflops_1_thread": round(gflops, 1),
        "fp32_floor_ms_per_item": round(flops / gflops / 1e6, 2), "cores": cores,
        "items_per_s_all_cores": round(cores / best, 1),
    }


def markdown(floor: dict[str, Any], target: float = 200.0) -> list[str]:
    f = floor
    return [
        "", "## Compute floor of the text model", "",
        f"Embedding one item's text costs {f['gflop_per_item']} GFLOP (all-MiniLM-L6-v2, counted on "
        f"{f['texts']} of this run's texts). One core embeds one in {f['cpu_ms_per_item']} ms the way "
        f"cold-start-embedding does ({'bf16' if f['bf16'] else 'fp32'}, one torch thread); fp32 at this CPU's "
        f"matrix-product rate ({f['fp32_gemm_gflops_1_thread']} GFLOP/s on one thread) would need "
        f"{f['fp32_floor_ms_per_item']} ms. With all {f['cores']} cores embedding and nothing else running, "
        f"ingest cannot pass **{f['items_per_s_all_cores']} items/s** on this machine (target {target:g}).",
    ]
