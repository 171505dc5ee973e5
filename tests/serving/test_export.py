"""Export: one graph (encoder + decoder + constrained beam search) with the code table
as input; parity with eager PyTorch; the Triton repository layout and contract."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from genrec.config import Settings
from genrec.model.rerank import frozen_estimates
from genrec.serving.artifact import ServingArtifact
from genrec.serving.engine import ServingEngine
from genrec.serving.export import ExportReport, check_parity, export_repository
from genrec.serving.graph import (
    TableTensors,
    base_table,
    build_graph,
    example_inputs,
    extend_table,
)
from genrec.serving.parity import synthetic_extra_items
from genrec.serving.repository import config_pbtxt
from genrec.serving.runners import EagerRunner, graph_onnx, make_runner, onnx_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("artifact", ["bundle_dir", "rerank_bundle_dir", "history_rerank_bundle_dir"])
def test_serving_graph_matches_the_bundle_recommender(artifact: str, request: pytest.FixtureRequest) -> None:
    """The slim artifact loader + table-as-input graph answer exactly like TrainedBundle
    (also when the model re-ranks its beam with a dense head)."""
    from genrec.training import TrainedBundle

    bundle_dir = request.getfixturevalue(artifact)
    bundle = TrainedBundle.load(bundle_dir)
    assert bundle.model.reranks is (artifact != "bundle_dir")
    art = ServingArtifact.open(bundle_dir)
    graph = build_graph(art)
    tensors = TableTensors.from_table(base_table(art))
    seq, tok, excl, *table = example_inputs(tensors, batch=5, length=8, excluded=3)
    tok = torch.randint(0, art.user_buckets, (5, 1))
    with torch.inference_mode():
        got = graph(seq, tok, excl, *table)
        want = bundle.recommender(top_k=50)(seq, tok.reshape(-1), excl)
    assert torch.equal(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_the_served_head_reads_the_trained_items_vectors_frozen_and_builds_the_fed_ones(
    history_rerank_bundle_dir: Path,
) -> None:
    """A head that scores the whole catalogue must not rebuild every trained item's vector per call:
    the serving graph freezes them once, and answers as the per-call scan does, items fed since included."""
    art = ServingArtifact.open(history_rerank_bundle_dir)
    graph, scanning = build_graph(art), build_graph(art)
    trained = base_table(art)
    frozen = graph.model.reranker.frozen_rows
    assert frozen.shape[0] == trained.n_items
    graph.model.freeze_catalogue(trained.item_codes, chunk=7)  # as a catalogue of many chunks is frozen
    torch.testing.assert_close(graph.model.reranker.frozen_rows, frozen)
    scanning.model.reranker.frozen_rows = scanning.model.reranker.frozen_rows[:0]  # every item per call
    fed = extend_table(trained, synthetic_extra_items(trained, 40, seed=3))
    for table in (trained, fed):
        inputs = example_inputs(TableTensors.from_table(table), batch=6, length=8, excluded=3, seed=4)
        with torch.inference_mode():
            got, want = graph(*inputs), scanning(*inputs)
        assert torch.equal(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
    assert bool((got[0] >= trained.n_items).any()), "a fed item is among the served ones"


@pytest.mark.parametrize("artifact", ["rerank_bundle_dir", "history_rerank_bundle_dir"])
def test_torchscript_export_parity_with_a_rerank_head(
    artifact: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = export_repository(request.getfixturevalue(artifact), "torchscript", tmp_path / "repo", log=lambda _m: None)
    assert report.checked and report.ok(min_item_match=1.0, atol=1e-5), report.as_dict()


def test_a_head_that_fills_the_list_is_served_with_a_narrower_beam(
    history_rerank_bundle_dir: Path, tmp_path: Path
) -> None:
    """The head's 20 items fill a top 20 whatever the beam: the exported graph keeps the asked beam of 5
    (a quarter of the decode) and answers as the eager one."""
    graph = build_graph(ServingArtifact.open(history_rerank_bundle_dir), top_k=20, beam_width=5)
    assert graph.beam_width == 5
    report = export_repository(history_rerank_bundle_dir, "torchscript", tmp_path / "repo", top_k=20, beam_width=5,
                               log=lambda _m: None)
    assert report.checked and report.ok(min_item_match=1.0, atol=1e-5), report.as_dict()
    config = (tmp_path / "repo" / "genrec" / "config.pbtxt").read_text()
    assert 'key: "beam_width" value: { string_value: "5" }' in config


def test_a_width_nobody_asked_for_is_left_to_each_served_model(history_rerank_bundle_dir: Path, tmp_path: Path) -> None:
    """The model behind a repository changes with promotions (a head model, then one without): an
    export that names no beam width writes none, so each artifact serves at its own
    (``TigerModel.beam_width_for``) instead of at the first one's."""
    export_repository(history_rerank_bundle_dir, "torchscript", tmp_path / "repo", top_k=10, check=False,
                      log=lambda _m: None)
    assert "beam_width" not in (tmp_path / "repo" / "genrec" / "config.pbtxt").read_text()


def test_torchscript_export_parity_and_repository(bundle_dir: Path, tmp_path: Path) -> None:
    report = export_repository(bundle_dir, "torchscript", tmp_path / "repo", log=lambda _m: None)
    assert report.checked and report.ok(min_item_match=1.0, atol=1e-5), report.as_dict()
    assert {c.n_items for c in report.cases} == {150, 166}, "parity also on a table grown after export"
    version = tmp_path / "repo" / "genrec" / "1"
    assert (version / "graph.pt").exists() and (version / "model.py").exists()
    assert (version / "artifact" / "item_codes.npy").exists()
    cfg = (tmp_path / "repo" / "genrec" / "config.pbtxt").read_text()
    assert 'string_value: "bundled"' in cfg and 'string_value: "torchscript"' in cfg
    assert "max_batch_size: 64" in cfg and "max_queue_delay_microseconds: 100" in cfg


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the `export` extra")
# The history-reading head's graph holds the other head's (the same scan, plus the history tower); each
# export costs ~25 s of the suite on 2 cores.
@pytest.mark.parametrize("artifact", ["bundle_dir", "history_rerank_bundle_dir", "id_tower_bundle_dir"])
def test_onnx_export_parity(artifact: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The production export (``genrec export --format onnx``) serves the eager graph's lists."""
    report = export_repository(request.getfixturevalue(artifact), "onnx", tmp_path / "repo", max_items=1024,
                               log=lambda _m: None)
    assert report.checked and report.ok(min_item_match=0.99, atol=1e-4), report.as_dict()


@pytest.fixture(scope="module")
def onnx_past_float32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ExportReport]:
    """An artifact whose item keys mostly lie past 2**24 (three items in four), exported as ONNX:
    (artifact, the model repository's version folder, the export's report)."""
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("needs the `export` extra")
    from genrec.serving.synthetic import make_artifact

    work = tmp_path_factory.mktemp("onnx-past-float32")
    small = {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64}
    artifact = make_artifact(work / "artifact", 300, level_sizes=(4, 4, 4, 256), model=small, seed=3)
    report = export_repository(artifact, "onnx", work / "repo", max_items=1024, log=lambda _m: None)
    return artifact, work / "repo" / "genrec" / "1", report


def _excluded_pairs(seq: torch.Tensor, excl: torch.Tensor, items: torch.Tensor) -> list[tuple[int, int]]:
    """(user, item) pairs where a served item is one the request excluded (its history or ``exclude``)."""
    excluded = torch.cat([seq, excl], 1).tolist()
    return [(u, i) for u, row in enumerate(items.tolist()) for i in row if i >= 0 and i in excluded[u]]


@pytest.mark.slow
def test_onnx_graph_excludes_the_history_with_keys_past_float32(onnx_past_float32) -> None:
    """Production code spaces (four levels of 256 codes) give item keys up to 2**32. An exported
    integer division became a float32 one, rounding keys past 2**24: ONNX Runtime (and TensorRT, fed
    the same graph) counted the wrong items as excluded and served lists that differ from eager
    PyTorch, history items included."""
    artifact, version_dir, report = onnx_past_float32
    art = ServingArtifact.open(artifact)
    runner = make_runner(art, version_dir, kind="onnx", device=torch.device("cpu"))
    seq, tok, excl, *table = example_inputs(TableTensors.from_table(base_table(art)), batch=16, length=20,
                                            excluded=3, seed=7)
    assert _excluded_pairs(seq, excl, runner(seq, tok, excl, *table)[0]) == []
    # near-ties of an untrained model's scores may swap (the other ONNX test's bound); 0.71 before
    assert report.checked and report.ok(min_item_match=0.98, atol=1e-4), report.as_dict()


@pytest.mark.slow
def test_the_onnx_runner_takes_the_servers_thread_count(onnx_past_float32) -> None:
    """Triton's ``threads`` parameter sets the model's intra-op threads (torch's); ONNX Runtime took every
    core whatever it said, so a server sized to one thread per instance ran two."""
    from genrec.serving.floor import torch_threads

    artifact, version_dir, _ = onnx_past_float32
    with torch_threads(1):
        runner = make_runner(ServingArtifact.open(artifact), version_dir, kind="onnx", device=torch.device("cpu"))
    assert runner.session.get_session_options().intra_op_num_threads == 1


@pytest.mark.slow
def test_the_model_server_serves_an_onnx_repository(onnx_past_float32, tmp_path: Path) -> None:
    """`genrec export --format onnx` writes a repository for Triton; the model server's own environment
    (.venv-serving, as the serving image) must load it: it had no ONNX Runtime, and the model never
    turned ready. Served lists are the in-process ONNX graph's."""
    from genrec.bench.serving import LocalServer
    from genrec.serving.client import ModelClient

    artifact, version_dir, _ = onnx_past_float32
    server = LocalServer(tmp_path / "work", repository=version_dir.parent.parent)
    try:
        server.wait_ready(timeout_s=180)
        art = ServingArtifact.open(artifact)
        seq, tok, excl, *table = example_inputs(TableTensors.from_table(base_table(art)), batch=8, length=20,
                                                excluded=3, seed=11)
        served = ModelClient(url=server.url).infer(seq.numpy(), tok.numpy(), excl.numpy())
        want = make_runner(art, version_dir, kind="onnx", device=torch.device("cpu"))(seq, tok, excl, *table)
        assert served.items.tolist() == want[0].tolist()
        assert _excluded_pairs(seq, excl, torch.tensor(served.items)) == []
    finally:
        server.stop()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT needs a CUDA GPU")
def test_tensorrt_export_parity(bundle_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    report = export_repository(bundle_dir, "tensorrt", tmp_path / "repo", log=lambda _m: None)
    assert report.checked and report.ok(min_item_match=0.9, atol=5e-2), report.as_dict()


def test_topk_sort_keeps_ties_in_index_order() -> None:
    from genrec.serving.onnx_ops import topk_sort

    x = torch.tensor([[3.0, 1.0, 3.0, 2.0]])
    assert topk_sort(x, dim=1, descending=True)[1].tolist() == [[0, 2, 3, 1]]  # ties keep index order


def test_exported_selection_breaks_ties_as_stable_top() -> None:
    """Exported graphs select with one ONNX TopK instead of ``stable_top``'s ~25 ops: ONNX Runtime must
    give the same order on ties (even splits under fresh items, dead beams' -inf, a zero user's equal scores)."""
    import onnx
    import onnxruntime as ort

    from genrec.model import beam

    class Select(torch.nn.Module):
        def forward(self, total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return beam.stable_top(total, 7)

    g = torch.Generator().manual_seed(0)
    total = torch.randint(0, 4, (5, 40), generator=g).float()
    total[1] = float("-inf")
    total[2, ::3] = float("-inf")
    total[3] = 0.0
    graph = onnx_bytes(Select(), (total,), input_names=["total"], output_names=["values", "index"],
                       dynamic_axes={"total": {0: "batch", 1: "n"}})
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    assert len([n for n in onnx.load_from_string(graph).graph.node if n.op_type == "TopK"]) == 1
    values, index = session.run(None, {"total": total.numpy()})
    expected = beam.stable_top(total, 7)
    assert index.tolist() == expected[1].tolist()
    assert np.array_equal(values, expected[0].numpy())


def test_parity_check_catches_a_wrong_graph(bundle_dir: Path) -> None:
    art = ServingArtifact.open(bundle_dir)
    graph = build_graph(art)

    def broken(*inputs):
        items, scores = graph(*inputs)
        return items.flip(1), scores

    cases = check_parity(graph, broken, base_table(art), cases=((2, 4, 1),), extra_items=4)
    assert min(c.item_match for c in cases) < 0.5


def test_kserve_template_matches_the_generator() -> None:
    template = REPO_ROOT / "inference" / "kserve" / "model-repository" / "genrec"
    want = config_pbtxt(kind="gpu", parameters={"artifact": "bundled", "runner": "auto", "load": "blocking"})
    assert (template / "config.pbtxt").read_text() == want
    assert "genrec.serving.triton_model import TritonPythonModel" in (template / "1" / "model.py").read_text()


def test_auto_runner_prefers_the_exported_graph(bundle_dir: Path, tmp_path: Path) -> None:
    export_repository(bundle_dir, "torchscript", tmp_path / "repo", check=False, log=lambda _m: None)
    version = tmp_path / "repo" / "genrec" / "1"
    art = ServingArtifact.open(version / "artifact")
    assert make_runner(art, version, "auto").kind == "torchscript"
    # no graph file: the eager graph converted to ONNX at load (on the CPU, with ONNX Runtime installed)
    assert make_runner(art, None, "auto").kind == "onnxruntime"
    # The engine uses an exported graph only for the artifact bundled next to it.
    bundled = ServingEngine(artifact=str(version / "artifact"), graph_dir=version, settings=Settings())
    bundled._check_pointer()
    assert bundled.state.runner.kind == "torchscript"
    other = ServingEngine(artifact=str(bundle_dir), graph_dir=version, settings=Settings())
    other._check_pointer()
    assert other.state.runner.kind == "onnxruntime"
    assert json.loads((version / "artifact" / "manifest.json").read_text())["n_items"] == 150


@pytest.mark.parametrize("kind", ["traced", "onnxruntime"])
@pytest.mark.parametrize("artifact", ["bundle_dir", "history_rerank_bundle_dir", "id_tower_bundle_dir"])
def test_the_graph_traced_or_converted_at_load_answers_as_the_eager_one(
    artifact: str, kind: str, request: pytest.FixtureRequest
) -> None:
    art = ServingArtifact.open(request.getfixturevalue(artifact))
    traced, eager = make_runner(art, None, kind), make_runner(art, None, "eager")
    assert traced.kind == kind  # not the fallback
    trained = base_table(art)
    fed = extend_table(trained, synthetic_extra_items(trained, 40, seed=7))
    # The fed items widen some level's fan-out: the graph reads the table's child slots, it did not bake them in.
    assert any(len(f) > len(t) for f, t in zip(fed.slots, trained.slots, strict=True))
    for seed, (table, batch, length) in enumerate([(trained, 5, 12), (fed, 17, 50), (fed, 1, 3)]):
        inputs = example_inputs(TableTensors.from_table(table), batch, length, 4, seed=seed)
        (want_items, want_scores), (got_items, got_scores) = eager(*inputs), traced(*inputs)
        assert torch.equal(want_items, got_items)
        torch.testing.assert_close(got_scores, want_scores, atol=1e-4, rtol=0)


def _converted(artifact: Path) -> tuple[EagerRunner, Any]:
    """The eager graph of ``artifact`` and the ONNX model ``ConvertedRunner`` serves from it."""
    import onnx

    eager = EagerRunner(ServingArtifact.open(artifact), 50, None, torch.device("cpu"))
    return eager, onnx.load_from_string(graph_onnx(eager.graph, eager.example()))


def _readers(model: Any, constant: torch.Tensor) -> list[str]:
    """The ops of an ONNX ``model`` that read the exporter's one constant of ``constant``'s shape and type."""
    from onnx.helper import tensor_dtype_to_np_dtype

    def same(t: Any) -> bool:
        return list(t.dims) == list(constant.shape) and tensor_dtype_to_np_dtype(t.data_type) == constant.numpy().dtype

    names = {i.name for i in model.graph.initializer if same(i)} | {
        node.output[0] for node in model.graph.node
        if node.op_type == "Constant" and any(same(a.t) for a in node.attribute)}
    assert len(names) == 1
    return [node.op_type for node in model.graph.node if names & set(node.input)]


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the `export` extra")
def test_the_converted_graph_estimates_the_frozen_catalogue_in_int8_and_reads_it_as_stored(
    history_rerank_bundle_dir: Path,
) -> None:
    """The head's product over the trained items reads their int8 columns (a quarter of the bytes: at 100k
    items 1.27x less CPU per user at batch 1), and the fp32 vectors are only gathered for the exact scores of
    a shortlist: a slice or transpose of either copied the whole catalogue on every call."""
    eager, model = _converted(history_rerank_bundle_dir)
    head = eager.graph.model.reranker
    assert _readers(model, head.frozen_int8) == ["MatMulInteger"]
    assert set(_readers(model, head.frozen_rows)) == {"Gather"}


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the `export` extra")
def test_the_onnx_export_reads_the_frozen_catalogue_in_int8_as_the_converted_graph_does(
    history_rerank_bundle_dir: Path, tmp_path: Path,
) -> None:
    """`genrec export --format onnx` wrote torch.export's graph, in which the head's int8 product over the
    catalogue was a float MatMul of the whole int8 table: 1.2-1.7x the CPU per call of the graph the server
    converts at load (100k items, batch 8-1). The export now writes that graph."""
    import onnx

    export_repository(history_rerank_bundle_dir, "onnx", tmp_path / "repo", check=False, log=lambda _m: None)
    model = onnx.load(str(tmp_path / "repo" / "genrec" / "1" / "graph.onnx"))
    eager = EagerRunner(ServingArtifact.open(history_rerank_bundle_dir), 50, None, torch.device("cpu"))
    head = eager.graph.model.reranker
    assert _readers(model, head.frozen_int8) == ["MatMulInteger"]


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the `export` extra")
def test_the_heads_estimates_are_copied_once_with_the_room_after_them(history_rerank_bundle_dir: Path) -> None:
    """The int8 estimates of the whole catalogue (a row per user as long as the catalogue) are scaled and then
    copied once, beside the items fed since and the -inf room the selection needs: a slice to the table's
    length and a second concatenation for the room copied the row twice more (2.5 ms of a 60 ms call at
    1M items, batch 8)."""
    _, model = _converted(history_rerank_bundle_dir)
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    node = next(n for n in model.graph.node if n.op_type == "MatMulInteger")
    chain = []
    while len(consumers.get(node.output[0], [])) == 1:
        node = consumers[node.output[0]][0]
        chain.append(node.op_type)
        if node.op_type not in ("Cast", "Mul"):
            break
    assert chain[-1] == "Concat" and set(chain[:-1]) <= {"Cast", "Mul"}, chain
    assert len(node.input) == 3, "the estimates, the items fed since, the room: one copy"


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the `export` extra")
def test_the_heads_int8_estimates_are_the_same_bit_for_bit_in_torch_and_onnx_runtime(
    history_rerank_bundle_dir: Path,
) -> None:
    """The head's shortlist is its best int8 estimates, so the served list is the reference graph's only if
    both runtimes estimate alike: x86's int8 kernel without VNNI saturated pairs of 8-bit products at 16 bits
    (another shortlist, 36 % of a 100k-item list's slots different, the converted graph refused at load)."""
    import onnx
    import onnxruntime as ort

    eager = EagerRunner(ServingArtifact.open(history_rerank_bundle_dir), 50, None, torch.device("cpu"))
    head = eager.graph.model.reranker

    class Estimates(torch.nn.Module):
        def forward(self, user: torch.Tensor) -> torch.Tensor:
            return frozen_estimates(user, head.frozen_int8, head.frozen_scales)

    users = torch.randn(16, head.frozen_rows.shape[1]) * torch.logspace(-3, 2, 16)[:, None]
    users[0] = 0.0  # an empty history's
    exported = onnx_bytes(Estimates(), (users,), input_names=["user"])
    session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
    assert "MatMulInteger" in {node.op_type for node in onnx.load_from_string(exported).graph.node}
    got = session.run(None, {"user": users.numpy()})[0]
    assert np.array_equal(got, Estimates()(users).numpy())


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the `export` extra")
def test_the_converted_graph_reads_the_prefix_tree_in_place(bundle_dir: Path) -> None:
    """The prefix tree (an input the size of the catalogue) is only reshaped, which aliases it: taking its rows
    copied all four of them on every call (8 MB at 100k items, a millisecond per call). Its values are read
    by GatherElements: ONNX Runtime's Gather read them ~10x slower (~5 % of a call at 100k items)."""
    _, model = _converted(bundle_dir)
    readers = [node for node in model.graph.node if "trie" in node.input]
    assert {node.op_type for node in readers} <= {"Reshape", "Shape"}, readers
    flat = {node.output[0] for node in readers if node.op_type == "Reshape"}
    value_readers = {node.op_type for node in model.graph.node if flat & set(node.input)}
    assert value_readers == {"GatherElements"}, value_readers


# Ops that take a CPU number (a 0-dim tensor) beside tensors of another device: the Python scalar
# conversions, and elementwise arithmetic, which reads a CPU 0-dim operand as a plain number.
_TAKES_A_CPU_NUMBER = {"aten::Int", "aten::ScalarImplicit", "aten::add", "aten::sub", "aten::rsub", "aten::mul",
                       "aten::div", "aten::floor_divide", "aten::remainder", "aten::pow", "aten::neg"}


def test_the_traced_graph_takes_sizes_only_as_numbers(bundle_dir: Path) -> None:
    """The tracer records a size read in Python (``x.shape[1] - 1``) as a CPU tensor. Served on a GPU,
    every other op refuses it beside CUDA tensors (``clamp``, ``where``, ``minimum``): tracing there
    failed so, and the server fell back to the eager graph. CI has no GPU, so the traced graph is read
    here: each value derived from a size reaches only ops that take it as a number."""
    graph = make_runner(ServingArtifact.open(bundle_dir), None, "traced").graph.inlined_graph
    sizes: set[str] = set()
    constants: set[str] = set()  # the tracer's tensor constants (the 1 of ``shape[1] - 1``)
    refused = []
    for node in graph.nodes():
        if node.kind() == "prim::NumToTensor":
            sizes.add(node.output().debugName())
        elif node.kind() == "prim::Constant" and node.output().type().kind() == "TensorType":
            constants.add(node.output().debugName())
        tensors = {v.debugName() for v in node.inputs() if v.type().kind() == "TensorType"}
        if not tensors & sizes:
            continue
        if node.kind() not in _TAKES_A_CPU_NUMBER:
            refused.append(str(node).strip()[:160])
        elif tensors <= sizes | constants:  # arithmetic among sizes and constants: a size again
            sizes.update(v.debugName() for v in node.outputs())
    assert refused == []
