"""TensorRT: an FP16 engine built from the ONNX export, and a runner for it (CUDA only).

Needs the ``gpu`` extra (``tensorrt``) and an NVIDIA GPU: not exercised on CPU machines
(its test is skipped without CUDA). The optimisation profile covers the serving contract:
batch 1..64, history 1..1024, exclusions 1..``max_excluded``, table 2..``max_items`` rows, and
each level's child slots 2..its vocabulary size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from genrec.config import MAX_HISTORY, MAX_SEQUENCE
from genrec.model.code_table import MIN_SLOTS, slot_names
from genrec.serving.graph import OUTPUT_NAMES, REQUEST_INPUTS, TABLE_INPUTS, check_capacity, input_names
from genrec.serving.repository import MAX_BATCH_SIZE


def _trt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError("TensorRT is not installed: pip install -e '.[gpu]' on a CUDA machine") from exc
    return trt


def build_engine(
    onnx_path: Path, plan_path: Path, level_sizes: Sequence[int], *, fp16: bool = True, max_items: int = 4_000_000,
    max_excluded: int = 2048, workspace_gb: float = 4.0, log: Callable[[str], None] = print,
) -> Path:
    trt = _trt()
    if not torch.cuda.is_available():
        raise RuntimeError("building a TensorRT engine needs a CUDA GPU")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16 and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    levels = len(level_sizes)
    b, opt_b = MAX_BATCH_SIZE, 16
    shapes = {
        "user_sequence": ((1, 1), (opt_b, MAX_HISTORY), (b, MAX_SEQUENCE)),
        "user_token": ((1, 1), (opt_b, 1), (b, 1)),
        "exclude": ((1, 1), (opt_b, 8), (b, max_excluded)),
        "item_codes": ((2, levels), (100_000, levels), (max_items, levels)),
        "item_keys": ((2,), (100_000,), (max_items,)),
        # The prefix tree's nodes: at most items x levels, plus the root and the pad column.
        "trie": ((4, 2), (4, 100_000 * levels + 2), (4, max_items * levels + 2)),
        # Each level's child slots: up to the level's vocabulary (``code_table.child_slots``).
        **{name: ((MIN_SLOTS,), (max(size, MIN_SLOTS),), (max(size, MIN_SLOTS),))
           for name, size in zip(slot_names(levels), level_sizes, strict=True)},
    }
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    log(f"building TensorRT engine (fp16={fp16}) from {onnx_path}; this takes minutes")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    Path(plan_path).write_bytes(bytes(plan))
    return Path(plan_path)


class TensorRTRunner:
    kind = "tensorrt"

    def __init__(self, path: Path, device: torch.device) -> None:
        trt = _trt()
        if device.type != "cuda":
            raise RuntimeError("the TensorRT runner needs a CUDA device")
        self.device = device
        self.path = Path(path)
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(Path(path).read_bytes())
        self.context = self.engine.create_execution_context()

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_capacity(self.path, inputs)
        stream = torch.cuda.current_stream(self.device)
        keep = []
        names = input_names(len(inputs) - len(REQUEST_INPUTS) - len(TABLE_INPUTS))
        for name, tensor in zip(names, inputs, strict=True):
            t = tensor.to(self.device, torch.int64).contiguous()
            keep.append(t)
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name, dtype in zip(OUTPUT_NAMES, (torch.int64, torch.float32), strict=True):
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return outputs["recommendations"], outputs["scores"]
