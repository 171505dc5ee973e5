"""Ways to run the serving graph: eager PyTorch, traced at load, TorchScript, ONNX Runtime, TensorRT.

Each runner is a callable ``(user_sequence, user_token, exclude, *table) -> (items, scores)``
on torch tensors, so the engine does not care which one it holds. The exported graph
files live in a Triton version folder next to the artifact they were exported from.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from genrec.config import TOP_K
from genrec.serving.artifact import ServingArtifact
from genrec.serving.graph import TableTensors, base_table, build_graph, check_capacity, example_inputs
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


class TracedRunner:
    """The eager graph traced to TorchScript when the artifact loads: the same kernels, dispatched
    from C++ instead of ~700 Python-level calls (2.5 instead of 4.2 ms for one user on a 2-core EPYC).
    It serves only after giving the eager graph's items and scores on inputs of other shapes than
    the one it was traced with (``TRACE_CHECKS``), on the trained table and one with items fed since;
    ``make_runner`` falls back to eager otherwise."""

    kind = "traced"
    TRACE_CHECKS = ((1, 1, 1), (3, 7, 2), (9, 33, 5))  # (batch, history length, excluded)

    def __init__(self, eager: EagerRunner) -> None:
        trained = base_table(eager.art)
        example = example_inputs(TableTensors.from_table(trained, eager.device), batch=2, length=20, excluded=1)
        self.graph = trace_graph(eager.graph, example)
        for case in check_parity(eager, self, trained, cases=self.TRACE_CHECKS, device=eager.device):
            if case.item_match < 1.0 or case.max_abs_diff > 1e-4 or case.inf_mismatch:
                raise ValueError(f"the traced graph differs from the eager one: {case}")

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph(*inputs)


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

    def __init__(self, path: Path, device: torch.device) -> None:
        import onnxruntime as ort  # the `export` extra; not in the slim serving venv

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.path = path
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: it lists every folded initializer otherwise
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]  # the export's order (slots per level)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_capacity(self.path, inputs)
        feed = {name: t.cpu().numpy() for name, t in zip(self.input_names, inputs, strict=True)}
        items, scores = self.session.run(None, feed)
        return torch.from_numpy(np.asarray(items)), torch.from_numpy(np.asarray(scores))


def make_runner(
    art: ServingArtifact, graph_dir: Path | None = None, kind: str = "auto", top_k: int = TOP_K,
    beam_width: int | None = None, device: torch.device | None = None,
) -> Runner:
    """The runner for ``kind``; ``auto`` takes the first graph file found in ``graph_dir``
    (TensorRT on GPU, then TorchScript, then ONNX), else the eager graph traced at load, else eager
    PyTorch (when tracing fails or does not match)."""
    device = device or pick_device()
    if kind == "auto":
        order = (["tensorrt"] if device.type == "cuda" else []) + ["torchscript", "onnx"]
        found = [k for k in order if graph_dir is not None and (graph_dir / GRAPH_FILES[k]).exists()]
        kind = found[0] if found else "traced"
    if kind in ("eager", "traced"):
        eager = EagerRunner(art, top_k, beam_width, device)
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
