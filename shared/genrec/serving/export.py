"""``genrec export``: a Triton model repository with the one-graph model and a parity check.

The graph (encoder + decoder + constrained beam search) takes the user inputs *and* the
code-table tensors, so the table stays data that the Python backend passes on each call.
Parity is checked against eager PyTorch on several batch sizes / lengths, on the trained
table and on a table extended with synthetic extra items (proving the table is not baked
in). Items must match exactly (modulo near-ties for float-reordering formats); scores
within ``atol``.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from genrec.config import TOP_K, Settings
from genrec.model.code_table import MIN_SLOTS, CodeTable, slot_names
from genrec.serving.artifact import REQUIRED_FILES, ServingArtifact
from genrec.serving.graph import (
    OUTPUT_NAMES,
    ServingGraph,
    TableTensors,
    base_table,
    build_graph,
    dynamic_axes,
    example_inputs,
    input_names,
)
from genrec.serving.parity import ParityCase, check_parity
from genrec.serving.repository import MAX_BATCH_SIZE, write_repository
from genrec.serving.runners import GRAPH_FILES, graph_onnx, make_runner, trace_graph

FORMATS = ("torchscript", "onnx", "tensorrt")


@dataclass
class ExportReport:
    format: str
    repository: str
    graph_file: str
    seconds: float
    cases: list[ParityCase] = field(default_factory=list)
    checked: bool = False
    note: str = ""

    @property
    def item_match(self) -> float:
        return min((c.item_match for c in self.cases), default=float("nan"))

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.cases), default=float("nan"))

    def ok(self, min_item_match: float = 0.98, atol: float = 1e-3) -> bool:
        return (not self.checked) or (
            self.item_match >= min_item_match and self.max_abs_diff <= atol
            and all(c.inf_mismatch == 0 for c in self.cases)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "item_match": self.item_match, "max_abs_diff": self.max_abs_diff, "ok": self.ok()}


# ------------------------------------------------------------------ graph export
def trace_torchscript(graph: ServingGraph, example: tuple[torch.Tensor, ...], path: Path) -> Path:
    trace_graph(graph, example).save(str(path))
    return path


def export_tensorrt_onnx(
    graph: ServingGraph, example: tuple[torch.Tensor, ...], path: Path, *, max_items: int = 2**24,
    max_excluded: int = 8192,
) -> Path:
    """The ONNX graph TensorRT builds its engine from: ``torch.onnx.export(dynamo=True)`` with dynamic
    batch, length, exclusions and table size, each bounded. (ONNX Runtime serves ``graph_onnx``'s instead:
    its int8 catalogue product is ``MatMulInteger``, which TensorRT does not parse.)

    ``max_items`` / ``max_excluded`` (history + exclude columns) are the graph's capacity, the
    bounds of its dynamic dimensions (TensorRT's optimisation profile takes them too). Written to
    ``graph.json``.
    """
    from genrec.serving.onnx_ops import onnx_compatible_ops

    levels = len(graph.level_sizes)
    bounds = {"batch": (1, MAX_BATCH_SIZE), "length": (1, 1024), "excluded": (1, max_excluded),
              "items": (2, max_items), "nodes": (2, max_items * levels + 2),
              **{f"fanout_{level}": (MIN_SLOTS, max(size, MIN_SLOTS)) for level, size in enumerate(graph.level_sizes)}}
    dims = {name: torch.export.Dim(name, min=low, max=high) for name, (low, high) in bounds.items()}
    axes = {name: {axis: dims[dim] for axis, dim in by_axis.items()} for name, by_axis in dynamic_axes(levels).items()}
    slots = slot_names(levels)
    shapes = {name: by_axis for name, by_axis in axes.items() if name not in slots}
    shapes["slots"] = tuple(axes[name] for name in slots)  # the graph's ``*slots``
    # optimize=False then constant folding only: folding (about a second) is what ONNX Runtime
    # needs for its shape inference, and ORT / TensorRT optimise the graph when they load it.
    with torch.no_grad(), onnx_compatible_ops(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal pytree deprecations
        program = torch.onnx.export(
            graph, example, dynamo=True, dynamic_shapes=shapes, input_names=list(input_names(len(graph.level_sizes))),
            output_names=list(OUTPUT_NAMES), optimize=False, verbose=False,
        )
    try:
        from onnxscript.optimizer import fold_constants

        fold_constants(program.model)
    except ImportError:  # an onnxscript without it: the full (slow) optimiser instead
        program.optimize()
    program.save(str(path))
    write_capacity(path, max_items=max_items, max_excluded=max_excluded)
    return path


def write_capacity(graph_path: Path, **capacity: int) -> None:
    graph_path.with_suffix(".json").write_text(json.dumps(capacity))


# ------------------------------------------------------------------ parity
# ------------------------------------------------------------------ repository
def export_repository(
    artifact: str | Path,
    fmt: str,
    out: Path,
    *,
    top_k: int = TOP_K,
    beam_width: int | None = None,
    instances: int = 1,
    check: bool = True,
    max_items: int = 2**24,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
) -> ExportReport:
    """Write ``out/genrec/{config.pbtxt, 1/model.py, 1/graph.*, 1/artifact/}``.

    ``max_items`` bounds the catalogue (trained + fed) a TensorRT engine can serve (its optimisation
    profile's); ONNX Runtime and TorchScript take a table of any size.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    t0 = time.perf_counter()
    art = ServingArtifact.open(artifact, settings)
    kind = "gpu" if fmt == "tensorrt" else "cpu"
    version_dir = write_repository(out, artifact="bundled", runner=fmt, top_k=top_k, instances=instances,
                                   kind=kind, extra_parameters={"beam_width": str(beam_width)} if beam_width else None)
    bundled = version_dir / "artifact"
    bundled.mkdir(exist_ok=True)
    for name in REQUIRED_FILES:
        shutil.copy2(art.root / name, bundled / name)

    graph = build_graph(art, top_k, beam_width, "cpu")
    table = base_table(art)
    example = example_inputs(TableTensors.from_table(table), batch=2, length=8, excluded=2)
    log(f"exporting {fmt} graph for artifact {art.uri} (version {art.version}, {table.n_items} items)")
    onnx_path = version_dir / GRAPH_FILES["onnx"]
    if fmt == "torchscript":
        trace_torchscript(graph, example, version_dir / GRAPH_FILES["torchscript"])
    elif fmt == "onnx":
        onnx_path.write_bytes(graph_onnx(graph, example))
    else:
        from genrec.serving.tensorrt import build_engine

        if table.n_items > max_items:
            raise ValueError(f"the catalogue has {table.n_items} items, more than --max-items {max_items}")
        export_tensorrt_onnx(graph, example, onnx_path, max_items=max_items)
        plan = version_dir / GRAPH_FILES["tensorrt"]
        build_engine(onnx_path, plan, art.level_sizes, fp16=True, max_items=max_items, log=log)
        write_capacity(plan, max_items=max_items, max_excluded=8192)
    report = ExportReport(fmt, str(out), str(version_dir / GRAPH_FILES[fmt]), 0.0)
    if check:
        report.cases, report.checked, report.note = _parity(art, version_dir, fmt, top_k, beam_width, graph, table)
    report.seconds = round(time.perf_counter() - t0, 1)
    return report


def _parity(
    art: ServingArtifact, version_dir: Path, fmt: str, top_k: int, beam_width: int | None,
    graph: ServingGraph, table: CodeTable,
) -> tuple[list[ParityCase], bool, str]:
    device = torch.device("cuda" if fmt == "tensorrt" else "cpu")
    try:
        runner = make_runner(art, version_dir, fmt, top_k, beam_width, device)
    except ImportError as exc:
        return [], False, f"parity not checked: {exc} (install the `export` extra)"
    if fmt == "tensorrt":  # compare against eager on the same device; FP16 moves scores a little
        graph = graph.to(device)

        def eager(*xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return graph(*(x.to(device) for x in xs))

        return check_parity(eager, runner, table), True, "FP16 engine"
    return check_parity(graph, runner, table), True, ""
