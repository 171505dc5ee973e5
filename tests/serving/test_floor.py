"""The compute floor: FLOPs counted on the real serving graph, matmul throughput measured."""

from __future__ import annotations

import itertools

import pytest
import torch

from genrec.model import CodeTable, GenerativeConfig, RerankConfig, TigerModel
from genrec.model.flops import count_flops
from genrec.serving.floor import compute_floor, flops_per_user, request_inputs
from genrec.serving.graph import ServingGraph, TableTensors, extend_table
from genrec.serving.parity import synthetic_extra_items

LEVELS = [6, 5, 7, 4]
CONFIG = GenerativeConfig(d_model=16, n_heads=2, encoder_layers=2, decoder_layers=3, d_ff=24, dropout=0.0,
                          max_history=10, user_buckets=3, rerank=None)


def _graph(beam_width: int) -> tuple[ServingGraph, TableTensors]:
    space = torch.tensor(list(itertools.product(*[range(v) for v in LEVELS])))
    table = CodeTable(space[torch.randperm(len(space), generator=torch.Generator().manual_seed(0))[:200]], LEVELS)
    torch.manual_seed(0)
    graph = ServingGraph(TigerModel(CONFIG, LEVELS), LEVELS, top_k=min(3, beam_width), beam_width=beam_width)
    return graph, TableTensors.from_table(table)


def _expected_flops(beam_width: int, history: int) -> int:
    """Matrix products and attention of one user, each decoded position computed once."""
    d, f, s = CONFIG.d_model, CONFIG.d_ff, history + 1  # memory: the user token and the history
    excluded = history + 1  # the history and the one `exclude` column the benchmark sends
    total = CONFIG.encoder_layers * (2 * s * (4 * d * d + 2 * d * f) + 4 * s * s * d)
    total += CONFIG.decoder_layers * 2 * s * 2 * d * d  # cross-attention keys, values of the memory: once
    beams = 1
    for size in LEVELS:
        # Each beam's new position: cross-attention over s positions, the level's head (self-attention over the
        # positions so far is elementwise: not counted).
        layer = 2 * (6 * d * d + 2 * d * f) + 4 * s * d
        # Plus the excluded items counted under each (beam, code): a [beams, E] x [E, size] product.
        total += beams * (CONFIG.decoder_layers * layer + 2 * d * size + 2 * excluded * size)
        beams = min(beam_width, beams * size)
    return total


def test_a_linear_layer_counts_two_flops_per_multiply_add() -> None:
    layer = torch.nn.Linear(12, 7)
    assert count_flops(layer, torch.randn(5, 12)) == 2 * 5 * 12 * 7


@pytest.mark.parametrize("beam_width", [1, 4, 9])
def test_a_request_decodes_each_position_once_per_beam(beam_width: int) -> None:
    graph, table = _graph(beam_width)
    assert flops_per_user(graph, table, length=8) == _expected_flops(beam_width, 8)
    assert flops_per_user(graph, table, length=8, batch=5) == _expected_flops(beam_width, 8)  # per user


def test_a_served_head_multiplies_no_weights_by_weights() -> None:
    """Every FLOP of a served call is some user's: the re-ranking head's item tower of every code depends on
    the weights alone, so serving freezes it with the catalogue (recomputed per call it was 67 of a
    production call's 171 MFLOP at batch 1), items fed since included."""
    torch.manual_seed(0)
    head = RerankConfig(catalogue_top=5, beam_width=4)
    model = TigerModel(CONFIG.model_copy(update={"rerank": head}), LEVELS, id_items=150).eval()
    _, trained = _graph(4)
    model.freeze_catalogue(trained.item_codes[:150])
    graph = ServingGraph(model, LEVELS, top_k=5)
    table = CodeTable(trained.item_codes, LEVELS)
    for fed in (table, extend_table(table, synthetic_extra_items(table, 30, seed=1))):
        tensors = TableTensors.from_table(fed)
        one, three = (count_flops(graph, *request_inputs(tensors, batch, 8)) for batch in (1, 3))
        assert three == 3 * one


def test_the_floor_is_the_flops_over_the_measured_throughput() -> None:
    graph, table = _graph(4)
    floor = compute_floor(graph, table, 8, batch=2, threads=2, seconds=0.05)
    assert floor.gemm == (8, CONFIG.d_model, CONFIG.d_ff) and set(floor.gflops) == {1, 2}
    assert all(g > 0 for g in floor.gflops.values())  # measured (a busy box can make it tiny)
    assert floor.ms_per_user(1) == pytest.approx(floor.flops_per_user / floor.gflops[1] / 1e6)
    assert floor.as_dict()["floor"]["2"]["users_per_s"] == round(floor.users_per_s(2), 1)


def test_the_serving_report_sets_the_cpu_time_per_user_beside_the_floor() -> None:
    from genrec.bench.serving import markdown_report

    graph, table = _graph(4)
    floor = compute_floor(graph, table, 8, batch=1, threads=2, seconds=0.05).as_dict()
    floor["gflops"]["1"], floor["floor"]["1"]["ms_per_user"] = 50.0, 2.5  # as if measured so
    results = {
        "budget": "smoke", "config": {"history_length": 8, "concurrency": 2, "instances": 2, "torch_threads": 1},
        "concurrency": [{"catalog": 200, "dynamic_batching": "on", "requests": 40, "p50_ms": 9, "p95_ms": 9,
                         "p99_ms": 9, "users_per_s": 80, "mean_executed_batch": 2.0, "server_cpu_ms_per_user": 4.0,
                         "client_cpu_ms_per_user": 0.5}],
        "machine": {"cpu": "test", "cores": 2, "memory_gb": 1, "gpu": None, "torch": torch.__version__,
                    "load_average_at_start": [0, 0, 0]},
        "model": {"kind": "tiny", "level_sizes": LEVELS, "top_k": 50, "beam_width": 20},
        "sweep": [{"catalog": 200, "batch": 1, "requests": 3, "p50_ms": 9, "p95_ms": 9, "p99_ms": 9, "users_per_s": 50,
                   "server_cpu_ms_per_user": 10.0}],
        "floor": {"1": floor}, "graph": {"200": {"1": 5.0}},
    }
    report = markdown_report(results)
    assert "Server: 2 model instances, 1 torch thread each." in report
    assert "## Compute floor" in report and "| 1 | [4, 16] x [16, 24] | 50.0 |" in report
    # server CPU, the graph alone, the floor, then server / floor and graph / floor
    assert "| 200 | 1 | 10.0 | 5.0 | 2.5 | 4.0x | 2.0x | 50 |" in report
    # under concurrent clients, the server's own CPU per user (and what one core of it serves) beside the clients'
    assert "| 200 | on | 40 | 9 | 9 | 9 | 80 | 2.0 | 4.0 | 250.0 | 0.5 |" in report


def test_the_graph_alone_is_timed_per_user_by_batch_size(tmp_path) -> None:
    from genrec.bench.serving import graph_alone
    from genrec.serving.synthetic import make_artifact

    art = make_artifact(tmp_path / "art", 300, level_sizes=(8, 8, 8), model={"d_model": 16, "n_heads": 2,
                        "encoder_layers": 1, "decoder_layers": 1, "d_ff": 32})
    per_user = graph_alone(art, [1, 4], length=6, seconds=0.05)
    assert set(per_user) == {"1", "4"} and all(v > 0 for v in per_user.values())
