"""Fixtures for the admin API tests: the running admin-api service of the session stack, seeded."""

from __future__ import annotations

import pytest

from genrec.config import Settings
from tests.admin.seed import World, seed_world


@pytest.fixture(scope="session")
def world(stack: Settings) -> World:
    return seed_world(stack)


@pytest.fixture(scope="session")
def admin_url(stack: Settings) -> str:
    return stack.function_url("admin_api")


@pytest.fixture(scope="session")
def tokens(stack: Settings) -> dict[str, str]:
    """role -> a static token of that role, from the settings (the dev defaults unless configured)."""
    by_role: dict[str, str] = {}
    for name, secret in stack.auth.admin_tokens.items():
        by_role.setdefault(stack.auth.admin_roles.get(name, "viewer"), secret.get_secret_value())
    assert {"viewer", "operator"} <= set(by_role), "the test settings need a viewer and an operator token"
    return by_role
