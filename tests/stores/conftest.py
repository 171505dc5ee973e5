"""Store fixtures over the session's real embedded stack. Tests isolate by unique ids, not resets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from genrec.config import Settings
from genrec.stores.postgres import connect, make_pool


@pytest.fixture(scope="session")
def pool(stack: Settings) -> Iterator[ConnectionPool]:
    p = make_pool(stack)
    yield p
    p.close()


@pytest.fixture
def uid() -> str:
    """A short unique prefix: keeps rows of different tests (and runs) apart in shared stores."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def empty_db(stack: Settings, uid: str) -> Iterator[Settings]:
    """Settings pointing at a brand-new, empty database on the stack's server (dropped afterwards)."""
    name = f"scratch_{uid}"
    with connect(stack, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    s = stack.model_copy(deep=True)
    s.postgres.dsn = SecretStr(stack.postgres.dsn.get_secret_value().rsplit("/", 1)[0] + f"/{name}")
    yield s
    with connect(stack, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def chdb_settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The stack's settings with a private chDB path: the stack's analytics-sink owns its own path,
    and chDB allows one engine per path. Close stores after use: one path per process at a time."""
    s = stack.model_copy(deep=True)
    s.clickhouse.url = None
    s.clickhouse.chdb_path = tmp_path_factory.mktemp("chdb")
    return s


class FakeClock:
    def __init__(self, t: float = 1_750_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
