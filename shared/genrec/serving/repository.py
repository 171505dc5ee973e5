"""Write a Triton model repository for the ``genrec`` model (the serving contract).

::

    <repo>/genrec/config.pbtxt     contract, dynamic batching, instances, parameters
    <repo>/genrec/1/model.py       Python backend: re-exports genrec.serving.triton_model
    <repo>/genrec/1/graph.{pt,onnx,plan}   exported graph (optional; traced at load without one)
    <repo>/genrec/1/artifact/      the trained artifact (``artifact: bundled``)

Contract: ``user_sequence`` INT64 [-1, L] (L <= 1024, pad -1), optional ``user_token``
INT64 [-1, 1] and ``exclude`` INT64 [-1, E]; outputs ``recommendations`` INT64 [-1, K]
and ``scores`` FP32 [-1, K], plus ``artifact_version`` BYTES [-1, 1] (which trained
artifact answered: the client maps indices with its catalogue). Both variable-length inputs allow ragged batches: the
backend left-pads the requests of a dynamic batch itself, so requests of different
lengths still share one graph call.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from genrec.config import TOP_K, Settings, get_settings

MODEL_NAME = "genrec"
# The production model server's repository (what the InferenceService's storageUri names): the
# model following the production pointer and its twin following the canary slot, so promotion,
# canary and rollback reach every replica without a new revision. Weights live with each
# artifact under models/<version>/.
PRODUCTION_REPOSITORY_KEY = "models/serving-repository"
MAX_BATCH_SIZE = 64
PREFERRED_BATCH_SIZES = (8, 16, 32, 64)
MAX_QUEUE_DELAY_US = 100

MODEL_PY = '''"""Triton Python backend entry point of the genrec model (logic: genrec.serving.triton_model)."""

from genrec.serving.triton_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


def config_pbtxt(
    *,
    name: str = MODEL_NAME,
    top_k: int = TOP_K,
    dynamic_batching: bool = True,
    instances: int = 1,
    kind: str = "cpu",
    parameters: dict[str, str] | None = None,
) -> str:
    params = "\n".join(
        f'parameters: {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in (parameters or {}).items()
    )
    batching = (
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(map(str, PREFERRED_BATCH_SIZES))} ]\n"
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n"
        "}\n"
        if dynamic_batching
        else ""
    )
    kind_name = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}[kind]
    return f"""name: "{name}"
backend: "python"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{ name: "user_sequence" data_type: TYPE_INT64 dims: [ -1 ] allow_ragged_batch: true }},
  {{ name: "user_token" data_type: TYPE_INT64 dims: [ 1 ] optional: true }},
  {{ name: "exclude" data_type: TYPE_INT64 dims: [ -1 ] optional: true allow_ragged_batch: true }}
]
output [
  {{ name: "recommendations" data_type: TYPE_INT64 dims: [ {top_k} ] }},
  {{ name: "scores" data_type: TYPE_FP32 dims: [ {top_k} ] }},
  {{ name: "artifact_version" data_type: TYPE_STRING dims: [ 1 ] }}
]
{batching}instance_group [ {{ count: {instances} kind: {kind_name} }} ]
{params}
"""


def write_repository(
    repo: Path,
    *,
    name: str = MODEL_NAME,
    artifact: str = "current",
    runner: str = "auto",
    top_k: int = TOP_K,
    dynamic_batching: bool = True,
    instances: int = 1,
    kind: str = "cpu",
    extra_parameters: dict[str, str] | None = None,
) -> Path:
    """Write (or refresh) ``repo/<name>``; returns the version folder ``repo/<name>/1``."""
    model_dir = Path(repo) / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    params = {"artifact": artifact, "runner": runner, **(extra_parameters or {})}
    (model_dir / "config.pbtxt").write_text(
        config_pbtxt(name=name, top_k=top_k, dynamic_batching=dynamic_batching, instances=instances, kind=kind,
                     parameters=params)
    )
    (version_dir / "model.py").write_text(MODEL_PY)
    return version_dir


def canary_model_name(name: str = MODEL_NAME) -> str:
    """The production repository's second model: the same code, following the canary slot."""
    return f"{name}_canary"


def production_repository_uri(s: Settings | None = None) -> str:
    from genrec.stores.objects import object_uri

    return object_uri(PRODUCTION_REPOSITORY_KEY, s)


def write_production_models(repo: Path, s: Settings) -> None:
    """The production server's two models into ``repo``: the one following the production pointer
    and its canary twin following the canary slot, each with the deployment's instances and threads."""
    name = s.model_server.model_name
    common = {"top_k": s.model.top_k, "kind": s.model_server.instance_kind, "instances": s.model_server.instances,
              "extra_parameters": {"threads": str(s.model_server.threads)}}
    write_repository(repo, name=name, artifact="current", **common)
    write_repository(repo, name=canary_model_name(name), artifact="canary", **common)


def write_production_repository(s: Settings | None = None) -> str:
    """(Re)write the production server's repository at production_repository_uri (idempotent)."""
    from genrec.stores.objects import upload_dir

    s = s or get_settings()
    uri = production_repository_uri(s)
    with tempfile.TemporaryDirectory(prefix="genrec-repository-") as tmp:
        write_production_models(Path(tmp), s)
        upload_dir(Path(tmp), uri, s)
    return uri
