"""Triton Python-backend model ``genrec``: one inference call returns the top-K.

A model repository's ``genrec/1/model.py`` is a one-line re-export of this class, so the
same code runs in the local server (Triton from the nvidia-pytriton wheel) and on KServe.
Imported only inside Triton's Python stub (``triton_python_backend_utils`` exists there).

Parameters (``config.pbtxt``): ``artifact`` = ``current`` (follow the production pointer),
``canary`` (follow the canary slot, ``genrec.serving.artifact.read_canary``), ``bundled``
(the ``artifact/`` folder exported into this version folder) or a dir / s3:// URI;
``runner`` = auto | eager | traced | onnxruntime (converted at load) | torchscript | onnx | tensorrt;
``beam_width``; ``feed_poll_s``; ``pointer_poll_s``; ``feed`` = off (no Redis: trained items only);
``threads`` (the model's intra-op threads, torch's and ONNX Runtime's; 0 = default); ``load`` = background
(the local dev server: Triton is up in a second and answers 503 until torch and the model are loaded) or
blocking (default, for KServe: the pod turns ready only with the model loaded).

Errors map to HTTP codes: malformed input 400 (INVALID_ARG), no model yet 503
(UNAVAILABLE), anything else 500. Each response also has the output
``artifact_version`` (BYTES [-1, 1]) so the client maps indices with the catalogue of
the version that answered (this Triton's Python backend cannot set response parameters).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from genrec.serving.protocol import STARTING, InvalidRequest, NotReady, Request, Result

log = logging.getLogger("genrec.serving")


def _params(model_config: dict[str, Any]) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.engine: Any = None
        self.start_error: str | None = None
        config = json.loads(args["model_config"])
        if _params(config).get("load") == "background":
            threading.Thread(target=self._start_background, args=(args, config), name="genrec-load",
                             daemon=True).start()
        else:  # KServe: a pinned artifact that fails to load fails the model (the pod never turns ready)
            self._start_engine(args, config)
            if not self.engine.ready() and self.engine.fixed_uri is not None:
                raise RuntimeError(self.engine.last_error)

    def _start_background(self, args: dict[str, str], config: dict[str, Any]) -> None:
        try:
            self._start_engine(args, config)
        except Exception as exc:  # keep the server up, answering 503 with the reason
            log.exception("genrec model failed to start")
            self.start_error = f"{type(exc).__name__}: {exc}"

    def _start_engine(self, args: dict[str, str], config: dict[str, Any]) -> None:
        import torch  # heavy: imported here so that a background load keeps start-up fast

        from genrec.serving.engine import ServingEngine

        params = _params(config)
        threads = int(params.get("threads") or 0)
        if threads:
            torch.set_num_threads(threads)
        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        source = params.get("artifact") or "current"
        artifact = {"current": None, "canary": None, "bundled": str(version_dir / "artifact")}.get(source, source)
        top_k = int(next(o["dims"][0] for o in config["output"] if o["name"] == "recommendations"))
        engine = ServingEngine(
            artifact=artifact,
            graph_dir=version_dir,
            runner_kind=params.get("runner") or "auto",
            redis_client=None if params.get("feed") == "off" else _redis(),
            top_k=top_k,
            beam_width=int(params["beam_width"]) if params.get("beam_width") else None,
            device=params.get("device") or None,
            feed_poll_s=float(params.get("feed_poll_s") or 0.5),
            pointer_poll_s=float(params.get("pointer_poll_s") or 2.0),
            slot="canary" if source == "canary" else "current",
        )
        # A failed or missing artifact must not fail the model load: it answers 503 and
        # the poller picks the artifact up once it is promoted.
        engine.start(wait_for_first_load=True)
        self.engine = engine
        log.info("genrec model ready=%s %s", engine.ready(), engine.status())

    def execute(self, requests: list[Any]) -> list[Any]:
        parsed: list[Request | None] = []
        responses: list[Any] = [None] * len(requests)
        for i, r in enumerate(requests):
            seq = pb_utils.get_input_tensor_by_name(r, "user_sequence")
            if seq is None:
                responses[i] = _error("missing required input 'user_sequence' (INT64 [batch, length], pad -1)",
                                      pb_utils.TritonError.INVALID_ARG)
                parsed.append(None)
                continue
            tok = pb_utils.get_input_tensor_by_name(r, "user_token")
            excl = pb_utils.get_input_tensor_by_name(r, "exclude")
            parsed.append(Request(seq.as_numpy(), None if tok is None else tok.as_numpy(),
                                  None if excl is None else excl.as_numpy()))
        todo = [i for i, p in enumerate(parsed) if p is not None]
        try:
            if self.engine is None:
                raise NotReady(self.start_error or STARTING)
            results = self.engine.infer_many([parsed[i] for i in todo])  # type: ignore[misc]
        except NotReady as exc:
            results = [exc] * len(todo)
        except Exception as exc:  # a bug, not the caller's fault: 500 for this batch
            log.exception("inference failed")
            results = [exc] * len(todo)
        for i, res in zip(todo, results, strict=True):
            responses[i] = _response(res)
        return responses

    def finalize(self) -> None:
        if self.engine is not None:
            self.engine.stop()


def _response(res: Result | Exception) -> Any:
    if isinstance(res, InvalidRequest):
        return _error(str(res), pb_utils.TritonError.INVALID_ARG)
    if isinstance(res, NotReady):
        return _error(f"model not ready: {res}", pb_utils.TritonError.UNAVAILABLE)
    if isinstance(res, Exception):
        return _error(f"inference failed: {type(res).__name__}: {res}", pb_utils.TritonError.INTERNAL)
    tensors = [
        pb_utils.Tensor("recommendations", np.ascontiguousarray(res.recommendations, dtype=np.int64)),
        pb_utils.Tensor("scores", np.ascontiguousarray(res.scores, dtype=np.float32)),
        pb_utils.Tensor("artifact_version", np.full((len(res.scores), 1), res.version.encode(), dtype=np.object_)),
    ]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))


def _redis() -> Any:
    try:
        from genrec.stores.hot_state import redis_client

        return redis_client()
    except Exception as exc:  # serve the trained catalogue even without the feed
        log.warning("no Redis for the code feed / pointer: %s", exc)
        return None
