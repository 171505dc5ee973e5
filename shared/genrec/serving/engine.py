"""The model server's core, independent of Triton: validate, batch, run, hot-swap.

State (artifact, runner, code table) is one immutable ``ServingState``; a request reads
``engine.state`` once, so a swap (an attribute assignment, atomic under the GIL) never
gives it a half-updated table. A background thread keeps the state current:

* every ``feed_poll_s`` one ``LLEN`` on the code feed; new entries extend the table
  (built off to the side, then swapped in): fed items become generatable at once;
* every ``pointer_poll_s`` (when following the production pointer) a read of the
  pointer; a new artifact is loaded and warmed up in the background, then swapped in.
  Requests keep flowing to the old state meanwhile.

With no artifact yet the engine stays up and ``infer`` raises ``NotReady`` (HTTP 503).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.config import TOP_K, Settings, get_settings
from genrec.model.code_table import CodeTable
from genrec.serving.artifact import ServingArtifact, register_version, resolve_slot
from genrec.serving.feed import decode_entry
from genrec.serving.graph import TableTensors, base_table, example_inputs, extend_table
from genrec.serving.keys import feed as feed_key
from genrec.serving.protocol import InvalidRequest, NotReady, Request, Result
from genrec.serving.runners import Runner, make_runner, pick_device

log = logging.getLogger("genrec.serving")

MAX_LENGTH = 1024  # longest user_sequence the contract accepts
MAX_EXCLUDE = 4096


@dataclass(frozen=True)
class ServingState:
    art: ServingArtifact
    runner: Runner
    table: CodeTable
    tensors: TableTensors
    n_fed: int = 0
    loaded_at: float = field(default_factory=time.time)

    @property
    def n_items(self) -> int:
        return self.tensors.n_items


class ServingEngine:
    def __init__(
        self,
        *,
        artifact: str | None = None,
        graph_dir: Path | None = None,
        runner_kind: str = "auto",
        settings: Settings | None = None,
        redis_client: Any = None,
        top_k: int = TOP_K,
        beam_width: int | None = None,
        device: str | None = None,
        feed_poll_s: float = 0.5,
        pointer_poll_s: float = 2.0,
        slot: str = "current",
    ) -> None:
        """``artifact=None`` follows a pointer (``slot``: ``current``, production, or ``canary``);
        a URI/dir pins one artifact."""
        self.settings = settings or get_settings()
        self.fixed_uri = artifact
        self.slot = slot
        self.graph_dir = graph_dir
        self.runner_kind = runner_kind
        self.redis = redis_client
        self.top_k = top_k
        self.beam_width = beam_width
        self.device = pick_device(device or self.settings.model.device)
        self.feed_poll_s = feed_poll_s
        self.pointer_poll_s = pointer_poll_s
        self.state: ServingState | None = None
        self.last_error: str | None = None
        self._redis_ok = True  # log Redis trouble once per outage, not every poll
        self._failed: dict[str, float] = {}  # uri -> when loading it last failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, wait_for_first_load: bool = True) -> None:
        if wait_for_first_load:
            self._check_pointer()
        self._thread = threading.Thread(target=self._loop, name="genrec-serving-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_pointer = time.monotonic() + self.pointer_poll_s
        while not self._stop.wait(self.feed_poll_s):
            try:
                if time.monotonic() >= next_pointer:
                    next_pointer = time.monotonic() + self.pointer_poll_s
                    self._check_pointer()
                self.poll_feed()
            except Exception:  # keep serving the old state whatever happens here
                log.exception("serving poller")

    # -------------------------------------------------------------- loading
    def _check_pointer(self) -> None:
        uri = self.fixed_uri or resolve_slot(self.slot, self.settings, self.redis)
        if uri is None:
            if self.state is None and self.slot == "canary":
                self.last_error = "no canary: promote one (`genrec pipeline promote VERSION --canary W`)"
            elif self.state is None:
                self.last_error = (
                    f"no trained artifact yet: train one (`genrec train`) and promote it (`genrec serve promote "
                    f"DIR`, which writes {Path(self.settings.model.artifacts_dir) / 'CURRENT'})"
                )
            return  # a pointer removed while serving: keep serving what we have
        current = self.state
        if current is not None and current.art.uri == uri:
            return
        if time.monotonic() - self._failed.get(uri, -1e9) < 30.0:
            return  # do not re-download a broken artifact every poll
        try:
            self.load(uri)
        except Exception as exc:
            self._failed[uri] = time.monotonic()
            self.last_error = f"loading artifact {uri} failed: {exc}"
            log.exception("loading artifact %s", uri)

    def load(self, uri: str) -> ServingState:
        """Load, warm up and swap in an artifact (the previous one serves until the swap)."""
        t0 = time.perf_counter()
        art = ServingArtifact.open(uri, self.settings)
        # Exported graphs belong to the artifact bundled next to them, never to another one.
        bundled = self.graph_dir is not None and art.root.resolve() == (self.graph_dir / "artifact").resolve()
        graph_dir = self.graph_dir if bundled else None
        runner = make_runner(art, graph_dir, self.runner_kind, self.top_k, self.beam_width, self.device)
        table = base_table(art)
        state = ServingState(art, runner, table, TableTensors.from_table(table, self.device))
        state = self._with_feed(state) or state
        runner(*example_inputs(state.tensors, batch=1, length=4, excluded=1))  # fail here, not on traffic
        if self.redis is not None:
            try:
                register_version(self.redis, art)
            except Exception as exc:
                log.warning("could not register version %s in Redis: %s", art.version, exc)
        self.state, self.last_error = state, None
        log.info("serving artifact %s (version %s, %d items, %s runner) after %.1fs", uri, art.version,
                 state.n_items, getattr(runner, "kind", "?"), time.perf_counter() - t0)
        return state

    def poll_feed(self) -> int:
        """Apply items appended to the code feed since the last poll; returns how many."""
        state = self.state
        if state is None or self.redis is None:
            return 0
        new = self._with_feed(state)
        if new is None or self.state is not state:
            return 0  # nothing new, or a version swap happened meanwhile
        self.state = new
        log.info("code feed: +%d items (now %d)", new.n_fed - state.n_fed, new.n_items)
        return new.n_fed - state.n_fed

    def _with_feed(self, state: ServingState) -> ServingState | None:
        if self.redis is None:
            return None
        key = feed_key(state.art.version)
        try:
            length = int(self.redis.llen(key))
            if length <= state.n_fed:
                return None
            raw = self.redis.lrange(key, state.n_fed, length - 1)
        except Exception as exc:  # Redis down: keep the table we have
            if self._redis_ok:
                log.warning("code feed unavailable (serving the table we have): %s", exc)
            self._redis_ok = False
            return None
        if not self._redis_ok:
            log.info("code feed reachable again")
            self._redis_ok = True
        codes = np.asarray([decode_entry(r).codes for r in raw], dtype=np.int64)
        table = extend_table(state.table, codes)
        return replace(state, table=table, tensors=TableTensors.from_table(table, self.device),
                       n_fed=state.n_fed + len(raw))

    # ------------------------------------------------------------ inference
    def ready(self) -> bool:
        return self.state is not None

    def infer(self, request: Request) -> Result:
        result = self.infer_many([request])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def infer_many(self, requests: Sequence[Request]) -> list[Result | Exception]:
        """Run several requests as one graph call (Triton's dynamic batch); a bad request
        gets its own error and does not fail the others."""
        state = self.state
        if state is None:
            err = NotReady(self.last_error or "model is loading")
            return [err for _ in requests]
        out: list[Result | Exception] = []
        good: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        for i, req in enumerate(requests):
            try:
                good.append((i, *self._validate(req, state)))
                out.append(None)  # type: ignore[arg-type]
            except InvalidRequest as exc:
                out.append(exc)
        if not good:
            return out
        seq = _stack_left_padded([g[1] for g in good])
        tok = np.concatenate([g[2] for g in good])
        excl = _stack_left_padded([g[3] for g in good])
        inputs = (torch.from_numpy(seq), torch.from_numpy(tok), torch.from_numpy(excl))
        items, scores = state.runner(*(t.to(self.device) for t in inputs), *state.tensors.as_tuple())
        items, scores = items.cpu().numpy(), scores.cpu().numpy().astype(np.float32)
        row = 0
        for i, s, _, _ in good:
            n = s.shape[0]
            out[i] = Result(items[row : row + n], scores[row : row + n], state.art.version, state.n_items)
            row += n
        return out

    def _validate(self, req: Request, state: ServingState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seq = _as_int64(req.user_sequence, "user_sequence")
        if seq.ndim != 2:
            raise InvalidRequest(f"user_sequence must be [batch, length], got shape {list(seq.shape)}")
        b, length = seq.shape
        if b < 1 or length < 1:
            raise InvalidRequest(f"user_sequence must be non-empty, got shape {list(seq.shape)}")
        if length > MAX_LENGTH:
            raise InvalidRequest(f"user_sequence is {length} long; at most {MAX_LENGTH} items are accepted")
        seq = _clean_indices(seq, state.n_items, "user_sequence")
        if req.user_token is None:
            tok = np.zeros((b, 1), dtype=np.int64)
        else:
            tok = _as_int64(req.user_token, "user_token").reshape(-1, 1) if np.size(req.user_token) == b else None
            if tok is None:
                raise InvalidRequest(f"user_token must be [batch, 1] = [{b}, 1], got {list(np.shape(req.user_token))}")
            buckets = max(state.art.user_buckets, 1)
            if ((tok < 0) | (tok >= buckets)).any():
                raise InvalidRequest(f"user_token must be in [0, {buckets}) (0 = anonymous)")
        if req.exclude is None:
            excl = np.full((b, 1), -1, dtype=np.int64)
        else:
            excl = _as_int64(req.exclude, "exclude")
            if excl.ndim != 2 or excl.shape[0] != b:
                raise InvalidRequest(f"exclude must be [batch={b}, E], got shape {list(excl.shape)}")
            if excl.shape[1] > MAX_EXCLUDE:
                raise InvalidRequest(f"exclude has {excl.shape[1]} columns; at most {MAX_EXCLUDE}")
            excl = _clean_indices(excl, state.n_items, "exclude") if excl.shape[1] else np.full((b, 1), -1)
        return seq, tok, excl

    def status(self) -> dict[str, Any]:
        state = self.state
        if state is None:
            return {"ready": False, "error": self.last_error}
        return {
            "ready": True, "artifact": state.art.uri, "version": state.art.version, "n_items": state.n_items,
            "n_fed": state.n_fed, "runner": getattr(state.runner, "kind", "?"), "device": str(self.device),
            "loaded_at": state.loaded_at, "error": self.last_error,
        }


def _as_int64(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise InvalidRequest(f"{name} must be INT64 item indices, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _clean_indices(arr: np.ndarray, n_items: int, name: str) -> np.ndarray:
    """Reject negative values other than -1; drop indices this replica does not know yet
    (fed a moment ago, picked up at the next poll) instead of failing the request."""
    if (arr < -1).any():
        raise InvalidRequest(f"{name} holds {int(arr.min())}: item indices are >= 0, padding is -1")
    unknown = arr >= n_items
    if not unknown.any():
        return arr
    # Re-pack each row to the right, as if the unknown items were never there: positions
    # count from the most recent item, so a hole would shift the others.
    out = np.full_like(arr, -1)
    for r, row in enumerate(arr):
        kept = row[~unknown[r]]
        out[r, arr.shape[1] - len(kept) :] = kept
    return out


def _stack_left_padded(rows: list[np.ndarray]) -> np.ndarray:
    """Concatenate ``[b_i, L_i]`` blocks into ``[sum b_i, max L_i]``, left-padded with -1."""
    width = max(r.shape[1] for r in rows)
    out = np.full((sum(r.shape[0] for r in rows), width), -1, dtype=np.int64)
    row = 0
    for r in rows:
        out[row : row + r.shape[0], width - r.shape[1] :] = r
        row += r.shape[0]
    return out
