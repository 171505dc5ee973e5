"""The model version registry: candidate -> canary -> production -> retired.

At most one version is in production (a partial unique index enforces it). Promotion and
rollback swap production inside one transaction, serialised by an advisory lock, so readers
never see zero or two production versions. Traffic: each canary gets its own weight and
production serves the remainder (see ``traffic_split``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from genrec.stores.postgres import Db, transaction

STATUSES = ("candidate", "canary", "production", "retired")
_REGISTRY_LOCK = 7_241_002  # pg_advisory_xact_lock key: one status change at a time
_COLUMNS = ("version, artifact_uri, serving_uri, metrics, status, traffic_weight, created_at, updated_at,"
            " promoted_at")


class RegistryError(ValueError):
    pass


@dataclass
class ModelVersion:
    version: str
    artifact_uri: str
    serving_uri: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "candidate"
    traffic_weight: float = 0.0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    promoted_at: datetime | None = None


class ModelRegistry:
    def __init__(self, db: Db) -> None:
        self.db = db

    def register(self, version: str, artifact_uri: str, *, serving_uri: str | None = None,
                 metrics: dict[str, Any] | None = None) -> ModelVersion:
        """Add a candidate; re-registering the same version only refreshes its URIs and metrics."""
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(ModelVersion)) as cur:
            return cur.execute(
                f"""
                INSERT INTO model_versions (version, artifact_uri, serving_uri, metrics) VALUES (%s, %s, %s, %s)
                ON CONFLICT (version) DO UPDATE SET artifact_uri = EXCLUDED.artifact_uri,
                    serving_uri = EXCLUDED.serving_uri, metrics = EXCLUDED.metrics
                RETURNING {_COLUMNS}
                """,
                (version, artifact_uri, serving_uri, Jsonb(metrics or {})),
            ).fetchone()

    def get(self, version: str) -> ModelVersion | None:
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(ModelVersion)) as cur:
            return cur.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE version = %s", (version,)).fetchone()

    def list(self, *, status: str | None = None) -> list[ModelVersion]:
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(ModelVersion)) as cur:
            return cur.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE (%s::text IS NULL OR status = %s)"
                " ORDER BY created_at DESC, version DESC",
                (status, status),
            ).fetchall()

    def production(self) -> ModelVersion | None:
        found = self.list(status="production")
        return found[0] if found else None

    def traffic_split(self) -> dict[str, float]:
        """version -> share of requests: canaries their weights, production the remainder."""
        canaries = {m.version: float(m.traffic_weight) for m in self.list(status="canary")}
        prod = self.production()
        split = dict(canaries)
        if prod is not None:
            split[prod.version] = max(0.0, 1.0 - sum(canaries.values()))
        return split

    def set_status(self, version: str, status: str, *, traffic_weight: float | None = None) -> ModelVersion:
        """Move a version to candidate/canary/retired (production goes through ``promote``).

        Canary weights must leave production a non-negative share (their sum is at most 1).
        """
        if status not in STATUSES:
            raise RegistryError(f"status must be one of {STATUSES}, got {status!r}")
        if status == "production":
            return self.promote(version)
        if traffic_weight is not None and not 0.0 <= traffic_weight <= 1.0:
            raise RegistryError(f"traffic_weight must be in [0, 1], got {traffic_weight}")
        weight = (traffic_weight or 0.0) if status == "canary" else 0.0
        with transaction(self.db) as conn:
            self._lock(conn)
            self._require(conn, version)
            others = conn.execute(
                "SELECT coalesce(sum(traffic_weight), 0) FROM model_versions WHERE status = 'canary'"
                " AND version <> %s", (version,),
            ).fetchone()[0]
            if weight + others > 1.0 + 1e-6:
                raise RegistryError(f"canary weights would sum to {weight + others:.3f} > 1")
            with conn.cursor(row_factory=class_row(ModelVersion)) as cur:
                return cur.execute(
                    f"UPDATE model_versions SET status = %s, traffic_weight = %s WHERE version = %s"
                    f" RETURNING {_COLUMNS}",
                    (status, weight, version),
                ).fetchone()

    def set_traffic(self, version: str, traffic_weight: float) -> ModelVersion:
        """Change a canary's share of traffic."""
        current = self.get(version)
        if current is None or current.status != "canary":
            raise RegistryError(f"{version!r} is not a canary")
        return self.set_status(version, "canary", traffic_weight=traffic_weight)

    def promote(self, version: str) -> ModelVersion:
        """Make ``version`` production; the previous production version becomes retired."""
        with transaction(self.db) as conn:
            self._lock(conn)
            self._require(conn, version)
            # Retire first: the one-production unique index is checked per statement.
            conn.execute(
                "UPDATE model_versions SET status = 'retired', traffic_weight = 0"
                " WHERE status = 'production' AND version <> %s", (version,),
            )
            with conn.cursor(row_factory=class_row(ModelVersion)) as cur:
                return cur.execute(
                    f"""
                    UPDATE model_versions SET status = 'production', traffic_weight = 1,
                        promoted_at = CASE WHEN status = 'production' THEN promoted_at ELSE clock_timestamp() END
                    WHERE version = %s RETURNING {_COLUMNS}
                    """,
                    (version,),
                ).fetchone()

    def rollback(self) -> ModelVersion:
        """Retire the current production version and restore the one promoted before it."""
        with transaction(self.db) as conn:
            self._lock(conn)
            current = conn.execute(
                "SELECT version, promoted_at FROM model_versions WHERE status = 'production'"
            ).fetchone()
            if current is None:
                raise RegistryError("no production version to roll back from")
            previous = conn.execute(
                "SELECT version FROM model_versions WHERE status = 'retired' AND promoted_at IS NOT NULL"
                " AND promoted_at < %s ORDER BY promoted_at DESC LIMIT 1",
                (current[1],),
            ).fetchone()
            if previous is None:
                raise RegistryError(f"no earlier production version before {current[0]!r}")
            conn.execute(
                "UPDATE model_versions SET status = 'retired', traffic_weight = 0, promoted_at = NULL"
                " WHERE version = %s", (current[0],),
            )
            with conn.cursor(row_factory=class_row(ModelVersion)) as cur:
                # promoted_at is kept, so a second rollback walks further back in history.
                return cur.execute(
                    f"UPDATE model_versions SET status = 'production', traffic_weight = 1 WHERE version = %s"
                    f" RETURNING {_COLUMNS}",
                    (previous[0],),
                ).fetchone()

    @staticmethod
    def _lock(conn: psycopg.Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_REGISTRY_LOCK,))

    @staticmethod
    def _require(conn: psycopg.Connection, version: str) -> None:
        if conn.execute("SELECT 1 FROM model_versions WHERE version = %s", (version,)).fetchone() is None:
            raise RegistryError(f"unknown model version {version!r}")
