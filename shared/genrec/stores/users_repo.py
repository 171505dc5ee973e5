"""User profiles in PostgreSQL: profile/preferences JSON, an optional embedding, activity time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from genrec.stores.postgres import Db, transaction


@dataclass
class User:
    user_id: str
    profile: dict[str, Any] = field(default_factory=dict)
    preferences: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    created_at: datetime | None = None
    last_active_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.embedding is not None and not isinstance(self.embedding, np.ndarray):
            self.embedding = self.embedding.to_numpy()  # pgvector's Vector
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


class UserRepo:
    def __init__(self, db: Db) -> None:
        self.db = db

    def upsert(self, user: User, *, merge: bool = True) -> None:
        """Insert or update a user. ``merge`` adds keys to profile/preferences instead of replacing
        them (profile events usually carry a few fields); a ``None`` embedding keeps the stored one."""
        emb = None if user.embedding is None else np.asarray(user.embedding, dtype=np.float32)
        op = "users.{0} || EXCLUDED.{0}" if merge else "EXCLUDED.{0}"
        with transaction(self.db) as conn:
            conn.execute(
                f"""
                INSERT INTO users (user_id, profile, preferences, embedding, last_active_at)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (user_id) DO UPDATE SET
                    profile = {op.format("profile")}, preferences = {op.format("preferences")},
                    embedding = COALESCE(EXCLUDED.embedding, users.embedding),
                    last_active_at = GREATEST(users.last_active_at, EXCLUDED.last_active_at)
                """,
                (user.user_id, Jsonb(user.profile), Jsonb(user.preferences), emb,
                 _utc(user.last_active_at) if user.last_active_at else None),
            )

    def get(self, user_id: str) -> User | None:
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(User)) as cur:
            return cur.execute(
                "SELECT user_id, profile, preferences, embedding, created_at, last_active_at, updated_at"
                " FROM users WHERE user_id = %s",
                (user_id,),
            ).fetchone()

    def touch(self, user_id: str, ts: datetime) -> None:
        """Record activity at ``ts`` (never moves last_active_at backwards; creates the user)."""
        self.upsert(User(user_id, last_active_at=ts))

    def count(self) -> int:
        with transaction(self.db) as conn:
            return conn.execute("SELECT count(*) FROM users").fetchone()[0]
