"""What the server core takes and gives, and its errors (no torch import: the Triton
model maps these to HTTP codes before torch has even been loaded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class InvalidRequest(ValueError):
    """The request is malformed (HTTP 400); the message says what to fix."""


class NotReady(RuntimeError):
    """No model is loaded yet, or loading failed (HTTP 503)."""


# What the model answers while its engine (torch, the graph) still loads, after Triton reports it ready.
STARTING = "the model server is starting (loading torch and the model)"


@dataclass
class Request:
    user_sequence: np.ndarray  # int64 [B, L], pad -1
    user_token: np.ndarray | None = None  # int64 [B, 1]
    exclude: np.ndarray | None = None  # int64 [B, E], pad -1


@dataclass
class Result:
    recommendations: np.ndarray  # int64 [B, K]
    scores: np.ndarray  # fp32 [B, K]
    version: str  # artifact version that produced them
    n_items: int  # table size (trained + fed) at the time
