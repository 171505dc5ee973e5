"""Schemathesis against the recommend and admin OpenAPI documents: whatever a client sends
that the document allows (and much that it does not), the answer is never a server error.

Operations are driven through Hypothesis directly (schemathesis' pytest plugin does not
support this pytest yet)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from genrec.config import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]
FUZZ = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)


# Endless by design: a generated request without a ``limit`` streams until the client leaves (eight
# such calls were 80 of the admin fuzz's 90 s); its validation has its own tests in tests/admin.
UNBOUNDED_STREAMS = {"GET /api/v1/metrics/stream"}


def _fuzz(app, headers: dict[str, str] | None = None) -> list[str]:
    """Run every operation of the app's OpenAPI document but the endless streams; returns the
    operations exercised."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    exercised = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" in UNBOUNDED_STREAMS:
            continue

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
        exercised.append(f"{operation.method.upper()} {operation.path}")
    return exercised


def test_recommend_api_never_answers_a_server_error(stack: Settings) -> None:
    from genrec.apps.recommend import create_app

    exercised = _fuzz(create_app(stack))
    assert "POST /api/v1/recommend/generate" in exercised and "GET /api/v1/recommend/popular" in exercised


def test_admin_api_never_answers_a_server_error(stack: Settings) -> None:
    from genrec.apps.admin import create_app

    # As a viewer: reads run, changes are refused (403), and neither may fail on the server.
    exercised = _fuzz(create_app(stack), {"authorization": "Bearer dev-viewer-token"})
    assert any(op.startswith("POST /api/v1/models") for op in exercised)
