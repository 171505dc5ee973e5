"""Model versions: the registry's list and traffic split, and its changes (traffic weights,
status, promotion, rollback), each followed by the model servers' canary slot."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import redis
from fastapi import APIRouter
from pydantic import Field

from genrec.apps.admin.deps import AppSettings, IdPath, Operator, Stores, StrictBody, Viewer
from genrec.apps.errors import ApiError
from genrec.config import Settings
from genrec.pipelines.publish import serve_canary
from genrec.stores.model_registry import ModelRegistry, ModelVersion, RegistryError

log = logging.getLogger("genrec.admin")
router = APIRouter(tags=["models"])


class TrafficRequest(StrictBody):
    weight: float = Field(ge=0.0, le=1.0, description="Share of requests this canary serves")


class StatusRequest(StrictBody):
    status: Literal["candidate", "canary", "retired"]
    traffic_weight: float | None = Field(default=None, ge=0.0, le=1.0)


@router.get("/api/v1/models", summary="Model versions, offline metrics, traffic split")
def models(_p: Viewer, res: Stores) -> dict[str, Any]:
    split = res.registry.traffic_split()
    return {"versions": [_view(m, split) for m in res.registry.list()], "traffic_split": split}


@router.put("/api/v1/models/{version}/traffic", summary="Set a canary's traffic weight")
def set_traffic(version: IdPath, body: TrafficRequest, _p: Operator, res: Stores, s: AppSettings) -> dict[str, Any]:
    def apply(r: ModelRegistry) -> ModelVersion:
        # A candidate given traffic becomes a canary ("start a canary"); production/retired refuse (409).
        if r.get(version).status == "candidate":
            return r.set_status(version, "canary", traffic_weight=body.weight)
        return r.set_traffic(version, body.weight)

    return _change(res.registry, s, apply, version)


@router.put("/api/v1/models/{version}/status", summary="Move a version to candidate/canary/retired")
def set_status(version: IdPath, body: StatusRequest, _p: Operator, res: Stores, s: AppSettings) -> dict[str, Any]:
    return _change(res.registry, s, lambda r: r.set_status(version, body.status, traffic_weight=body.traffic_weight),
                   version)


@router.post("/api/v1/models/{version}/promote", summary="Make a version production")
def promote(version: IdPath, _p: Operator, res: Stores, s: AppSettings) -> dict[str, Any]:
    return _change(res.registry, s, lambda r: r.promote(version), version)


@router.post("/api/v1/models/rollback", summary="Restore the previous production version")
def rollback(_p: Operator, res: Stores, s: AppSettings) -> dict[str, Any]:
    return _change(res.registry, s, lambda r: r.rollback())


def _change(reg: ModelRegistry, s: Settings, fn: Callable[[ModelRegistry], ModelVersion],
            version: str | None = None) -> dict[str, Any]:
    """One registry change: 404 for an unknown version, 409 for a move the registry refuses."""
    if version is not None and reg.get(version) is None:
        raise ApiError(404, "version", f"unknown model version {version!r}", "not_found")
    try:
        m = fn(reg)
    except RegistryError as exc:
        raise ApiError(409, "version" if version else "", str(exc), "conflict") from None
    try:  # a canary's weight is real traffic: the model servers' canary slot follows the registry
        serve_canary(reg, s)
    except (redis.RedisError, OSError) as exc:
        log.warning("canary slot not updated (the registry is): %s", exc)
    return _view(m, reg.traffic_split())


def _view(m: ModelVersion, split: dict[str, float]) -> dict[str, Any]:
    return {"version": m.version, "status": m.status, "traffic_weight": m.traffic_weight,
            "traffic_share": split.get(m.version, 0.0), "artifact_uri": m.artifact_uri,
            "serving_uri": m.serving_uri, "metrics": m.metrics, "created_at": m.created_at,
            "updated_at": m.updated_at, "promoted_at": m.promoted_at}
