"""Client of the ``genrec`` model (Triton / KServe, Open Inference Protocol v2).

``ModelClient.infer`` sends dense indices and returns top-K indices and scores;
``ModelClient.recommend`` takes external item ids (it maps them with the catalogue of the
artifact version that answered, code-feed items included). Calls have a timeout and go
through a circuit breaker: after ``breaker_failures`` consecutive failures (timeouts,
refused connections, 5xx, 503 "not ready") it raises ``ModelUnavailable`` at once, until
a trial call after ``breaker_reset_s`` succeeds. A 4xx is the caller's bug
(``InvalidModelRequest``) and says nothing about the server's health.

tritonclient's HTTP client is not thread-safe: one per thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genrec.config import Settings, get_settings
from genrec.serving.breaker import CircuitBreaker


class ModelUnavailable(RuntimeError):
    """The model server is down, slow, not ready, or the breaker is open: use the fallback."""


class InvalidModelRequest(ValueError):
    """The server rejected the request as malformed (HTTP 4xx)."""


@dataclass
class Recommendations:
    items: np.ndarray  # int64 [B, K], -1 = empty slot
    scores: np.ndarray  # fp32 [B, K], descending
    version: str | None  # artifact version that answered


class ModelClient:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        model_name: str | None = None,
        timeout_s: float | None = None,
        breaker: CircuitBreaker | None = None,
        redis_client: Any = None,
    ) -> None:
        self.settings = s = settings or get_settings()
        self.url = url or str(s.model_server.url)
        self.model_name = model_name or s.model_server.model_name
        self.timeout_s = timeout_s if timeout_s is not None else s.model_server.timeout_s
        self.breaker = breaker or CircuitBreaker(s.model_server.breaker_failures, s.model_server.breaker_reset_s)
        self.protocol = s.model_server.protocol
        self._redis = redis_client
        self._catalogs = None
        self._local = threading.local()

    # ------------------------------------------------------------ transport
    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                import tritonclient.grpc as tc  # needs tritonclient[grpc]
                client = tc.InferenceServerClient(self.url)
            else:
                import tritonclient.http as tc
                client = tc.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            self._local.client, self._local.module = client, tc
        return client

    def _drop_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # ------------------------------------------------------------ inference
    def infer(
        self, user_sequence: np.ndarray, user_token: np.ndarray | None = None, exclude: np.ndarray | None = None
    ) -> Recommendations:
        """``user_sequence int64 [B, L]`` (pad -1) -> top-K dense indices and scores."""
        if not self.breaker.allow():
            raise ModelUnavailable(
                f"model server circuit open after repeated failures; retry in {self.breaker.retry_in():.1f}s"
            )
        try:
            client = self._client()
            tc = self._local.module
            inputs = []
            for name, arr in (("user_sequence", user_sequence), ("user_token", user_token), ("exclude", exclude)):
                if arr is None:
                    continue
                arr = np.ascontiguousarray(arr, dtype=np.int64)
                inp = tc.InferInput(name, list(arr.shape), "INT64")
                inp.set_data_from_numpy(arr)
                inputs.append(inp)
            outputs = [tc.InferRequestedOutput(n) for n in ("recommendations", "scores", "artifact_version")]
            kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
            from genrec.tracing import outgoing_headers  # the model server's span joins the request's trace

            result = client.infer(self.model_name, inputs, outputs=outputs, headers=outgoing_headers(), **kwargs)
        except Exception as exc:
            status = _status(exc)
            if status is not None and 400 <= status < 500 and status != 408 and status != 429:
                self.breaker.record_success()  # the server answered; our request was wrong
                raise InvalidModelRequest(_message(exc)) from exc
            self.breaker.record_failure()
            self._drop_client()  # a timed-out connection may hold a half-read response
            raise ModelUnavailable(f"model server {self.url}: {_message(exc)}") from exc
        self.breaker.record_success()
        return Recommendations(result.as_numpy("recommendations"), result.as_numpy("scores"), _version(result))

    def recommend(
        self,
        histories: Sequence[Sequence[str]],
        *,
        user_ids: Sequence[str | None] | None = None,
        exclude: Sequence[Sequence[str]] | None = None,
        k: int | None = None,
    ) -> list[list[tuple[str, float]]]:
        """External item ids in (oldest first), ``[(item_id, score), ...]`` per user out.

        The most recent ``max_history`` known items feed the model; every known history
        item (and ``exclude``) is excluded from the results. Unknown ids are ignored.
        """
        return self.recommend_versioned(histories, user_ids=user_ids, exclude=exclude, k=k)[1]

    def recommend_versioned(
        self,
        histories: Sequence[Sequence[str]],
        *,
        user_ids: Sequence[str | None] | None = None,
        exclude: Sequence[Sequence[str]] | None = None,
        k: int | None = None,
    ) -> tuple[str, list[list[tuple[str, float]]]]:
        """``recommend`` plus the artifact version whose model produced the answer."""
        catalog = self.catalogs().get()
        rec = self._infer_ids(catalog, histories, user_ids, exclude)
        if rec.version and rec.version != catalog.version:
            # A replica still (or already) serves another version: its dense indices differ,
            # so encode the request again with that version's catalogue.
            catalog = self.catalogs().get(rec.version)
            rec = self._infer_ids(catalog, histories, user_ids, exclude)
            if rec.version and rec.version != catalog.version:
                catalog = self.catalogs().get(rec.version)  # switched again mid-request: label by the answer
        k = k or self.settings.model.top_k
        out = []
        for items, scores in zip(rec.items, rec.scores, strict=True):
            row = [(catalog.item_id(int(i)), float(s)) for i, s in zip(items, scores, strict=True) if i >= 0]
            out.append([(iid, s) for iid, s in row if iid is not None][:k])
        return catalog.version, out

    def _infer_ids(self, catalog: Any, histories: Sequence[Sequence[str]],
                   user_ids: Sequence[str | None] | None, exclude: Sequence[Sequence[str]] | None) -> Recommendations:
        seqs, excls = [], []
        for row, hist in enumerate(histories):
            idx = catalog.indices(list(hist))
            idx = idx[idx >= 0]
            seqs.append(idx[-catalog.art.max_history :])
            extra = catalog.indices(list(exclude[row])) if exclude is not None else np.empty(0, np.int64)
            excls.append(np.concatenate([idx[: -catalog.art.max_history], extra[extra >= 0]]))
        tokens = np.asarray([[catalog.user_token(u)] for u in (user_ids or [None] * len(histories))], np.int64)
        return self.infer(_left_pad(seqs), tokens, _left_pad(excls))

    def catalogs(self):  # -> CatalogCache (import kept lazy: Redis only when ids are mapped)
        if self._catalogs is None:
            from genrec.serving.catalog import CatalogCache
            from genrec.stores.hot_state import redis_client

            self._catalogs = CatalogCache(self._redis or redis_client(self.settings), self.settings)
        return self._catalogs

    # --------------------------------------------------------------- health
    def server_live(self) -> bool:
        try:
            return bool(self._client().is_server_live())
        except Exception:
            return False

    def status(self) -> dict[str, Any]:
        """Live? ready? which artifact? (one tiny inference; does not touch the breaker)."""
        out: dict[str, Any] = {"url": self.url, "live": self.server_live(), "ready": False}
        if not out["live"]:
            return out
        probe = ModelClient(self.settings, url=self.url, model_name=self.model_name,
                            timeout_s=max(self.timeout_s, 5.0), breaker=CircuitBreaker(1, 0.0))
        try:
            rec = probe.infer(np.full((1, 1), -1, dtype=np.int64))
            out.update(ready=True, version=rec.version)
        except (ModelUnavailable, InvalidModelRequest) as exc:
            out["error"] = str(exc)
        return out


def _left_pad(rows: list[np.ndarray]) -> np.ndarray:
    width = max([len(r) for r in rows] + [1])
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        if len(r):
            out[i, width - len(r) :] = r
    return out


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    try:
        value = status() if callable(status) else status
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # grpc reports names like StatusCode.UNAVAILABLE


def _message(exc: Exception) -> str:
    msg = getattr(exc, "message", None)
    text = msg() if callable(msg) else None
    return text or f"{type(exc).__name__}: {exc}"


def _version(result: Any) -> str | None:
    try:
        value = result.as_numpy("artifact_version")
    except Exception:
        return None
    if value is None or not value.size:
        return None
    first = value.reshape(-1)[0]
    return first.decode() if isinstance(first, bytes) else str(first)
