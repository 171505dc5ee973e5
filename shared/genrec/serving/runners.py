"""Ways to run the serving graph: eager PyTorch, traced or converted to ONNX at load, TorchScript, ONNX
Runtime, TensorRT.

Each runner is a callable ``(user_sequence, user_token, exclude, *table) -> (items, scores)``
on torch tensors, so the engine does not care which one it holds. The exported graph
files live in a Triton version folder next to the artifact they were exported from.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from genrec.config import TOP_K
from genrec.model.code_table import CodeTable
from genrec.serving.artifact import ServingArtifact
from genrec.serving.graph import (
    OUTPUT_NAMES,
    TableTensors,
    base_table,
    build_graph,
    check_capacity,
    dynamic_axes,
    example_inputs,
    input_names,
)
from genrec.serving.parity import check_parity

log = logging.getLogger("genrec.serving")
Runner = Callable[..., tuple[torch.Tensor, torch.Tensor]]

GRAPH_FILES = {"torchscript": "graph.pt", "onnx": "graph.onnx", "tensorrt": "graph.plan"}


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class EagerRunner:
    kind = "eager"

    def __init__(self, art: ServingArtifact, top_k: int, beam_width: int | None, device: torch.device) -> None:
        self.art, self.device = art, device
        self.graph = build_graph(art, top_k, beam_width, device)

    @functools.cached_property
    def trained(self) -> CodeTable:
        """The artifact's own table (built once, only for a graph built at load: its example and checks)."""
        return base_table(self.art)

    def example(self) -> tuple[torch.Tensor, ...]:
        """The inputs a graph built at load (traced, converted) is built with."""
        return example_inputs(TableTensors.from_table(self.trained, self.device), batch=2, length=20, excluded=1)

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph(*inputs)


def trace_graph(graph: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    """``graph`` traced to TorchScript on ``example``."""
    # The tracer warns about every Python int/bool it sees; those are static here (level sizes,
    # beam counts), and shapes stay symbolic, which a parity check proves. torch 2.13 also flags
    # TorchScript as deprecated: it is still what Triton's PyTorch backend loads.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.trace(graph, example, check_trace=False)


# (batch, history length, excluded): other shapes than the example a graph built at load is built with
LOAD_CHECKS = ((1, 1, 1), (3, 7, 2), (9, 33, 5))


def check_built_at_load(eager: EagerRunner, built: Runner, what: str) -> None:
    """Raise unless ``built`` gives the eager graph's items and scores on ``LOAD_CHECKS``, on the trained
    table and on one with items fed since."""
    for case in check_parity(eager, built, eager.trained, cases=LOAD_CHECKS, device=eager.device):
        if case.item_match < 1.0 or case.max_abs_diff > 1e-4 or case.inf_mismatch:
            raise ValueError(f"the {what} graph differs from the eager one: {case}")


class TracedRunner:
    """The eager graph traced to TorchScript when the artifact loads: the same kernels, dispatched
    from C++ instead of ~700 Python-level calls (2.5 instead of 4.2 ms for one user on a 2-core EPYC).
    It serves only after giving the eager graph's items and scores on inputs of other shapes than
    the one it was traced with (``check_built_at_load``); ``make_runner`` falls back to eager otherwise."""

    kind = "traced"

    def __init__(self, eager: EagerRunner) -> None:
        self.graph = trace_graph(eager.graph, eager.example())
        check_built_at_load(eager, self, "traced")

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph(*inputs)


class ConvertedRunner:
    """The eager graph converted to ONNX when the artifact loads and run by ONNX Runtime, on the CPU: it
    dispatches the graph's ~700 small operations more cheaply than TorchScript (the dev stack: 1.1-1.4x the
    requests per second, p50 at one client 12-13 against 14 ms; bench/results/serving-onnx-runtime-s34.md).
    TorchScript's ONNX exporter converts in about two seconds (the dynamo one, which ``genrec export`` uses for
    TensorRT's dynamic shapes, takes thirty); no sizes are baked in, which the traced graph's parity check
    proves before it serves (``make_runner`` falls back to the traced graph otherwise)."""

    kind = "onnxruntime"

    def __init__(self, eager: EagerRunner) -> None:
        self.onnx = OnnxRunner(graph_onnx(eager.graph, eager.example()), eager.device)
        check_built_at_load(eager, self, "converted")

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.onnx(*inputs)


def graph_onnx(graph: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> bytes:
    """A serving graph as the ONNX model ONNX Runtime serves on the CPU (converted at load, or written by
    ``genrec export --format onnx``): every size symbolic, the head's int8 catalogue product ``MatMulInteger``."""
    levels = len(graph.level_sizes)
    return onnx_bytes(graph, example, input_names=list(input_names(levels)), output_names=list(OUTPUT_NAMES),
                      dynamic_axes=dynamic_axes(levels))


def onnx_bytes(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], **names: object) -> bytes:
    """``module`` called on ``inputs`` as an ONNX model's bytes, by TorchScript's exporter with the ops ONNX
    lacks swapped in (``onnx_compatible_ops``); ``names``: ``torch.onnx.export``'s names and dynamic axes."""
    from genrec.serving.onnx_ops import onnx_compatible_ops

    buffer = io.BytesIO()
    with torch.no_grad(), onnx_compatible_ops(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's (see trace_graph) and the exporter's deprecation
        torch.onnx.export(module, inputs, buffer, dynamo=False, opset_version=17, **names)
    return buffer.getvalue()


class TorchScriptRunner:
    kind = "torchscript"

    def __init__(self, path: Path, device: torch.device) -> None:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13 (see export.py)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.graph = torch.jit.load(str(path), map_location=device).eval()

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph(*inputs)


class OnnxRunner:
    kind = "onnx"

    def __init__(self, model: Path | bytes, device: torch.device) -> None:
        """``model``: an exported graph file, or a graph's bytes (``ConvertedRunner``'s)."""
        import onnxruntime as ort  # the onnx-runtime extra

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.path = model if isinstance(model, Path) else None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: it lists every folded initializer otherwise
        # the server's thread setting (Triton's ``threads`` parameter sets torch's) holds for every runtime
        options.intra_op_num_threads = torch.get_num_threads()
        source = str(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(source, sess_options=options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]  # the export's order (slots per level)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.path is not None:
            check_capacity(self.path, inputs)
        feed = {name: t.cpu().numpy() for name, t in zip(self.input_names, inputs, strict=True)}
        items, scores = self.session.run(None, feed)
        return torch.from_numpy(np.asarray(items)), torch.from_numpy(np.asarray(scores))


def converts_at_load(device: torch.device) -> bool:
    """Whether ``make_runner`` serves a graph without a file by converting it to ONNX (on the CPU, with ONNX
    Runtime and onnx installed) rather than tracing it."""
    return device.type == "cpu" and all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx"))


def make_runner(
    art: ServingArtifact, graph_dir: Path | None = None, kind: str = "auto", top_k: int = TOP_K,
    beam_width: int | None = None, device: torch.device | None = None,
) -> Runner:
    """The runner for ``kind``; ``auto`` takes the first graph file found in ``graph_dir``
    (TensorRT on GPU, then TorchScript, then ONNX), else, on the CPU with ONNX Runtime installed, the
    eager graph converted to ONNX at load, else the eager graph traced at load, else eager PyTorch
    (each step taken when the one before fails or does not match)."""
    device = device or pick_device()
    if kind == "auto":
        order = (["tensorrt"] if device.type == "cuda" else []) + ["torchscript", "onnx"]
        found = [k for k in order if graph_dir is not None and (graph_dir / GRAPH_FILES[k]).exists()]
        kind = found[0] if found else "onnxruntime" if converts_at_load(device) else "traced"
    if kind in ("eager", "traced", "onnxruntime"):
        eager = EagerRunner(art, top_k, beam_width, device)
        if kind == "onnxruntime":
            try:
                return ConvertedRunner(eager)
            except Exception as exc:
                log.warning("serving the traced graph: converting %s to ONNX failed: %s", art.version, exc)
                kind = "traced"
        if kind == "eager":
            return eager
        try:
            return TracedRunner(eager)
        except Exception as exc:  # serve, slower, rather than not at all
            log.warning("serving the eager graph: tracing %s failed: %s", art.version, exc)
            return eager
    if graph_dir is None or not (graph_dir / GRAPH_FILES[kind]).exists():
        raise FileNotFoundError(f"no {kind} graph ({GRAPH_FILES.get(kind)}) in {graph_dir}")
    path = graph_dir / GRAPH_FILES[kind]
    if kind == "torchscript":
        return TorchScriptRunner(path, device)
    if kind == "onnx":
        return OnnxRunner(path, device)
    if kind == "tensorrt":
        from genrec.serving.tensorrt import TensorRTRunner

        return TensorRTRunner(path, device)
    raise ValueError(f"unknown runner kind {kind!r}")
