"""Structured logs: JSON lines that carry the service and the caller's request id."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from genrec.apps.common import create_base_app
from genrec.config import Settings
from genrec.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_lines_are_json_with_service_and_request_id() -> None:
    stream = io.StringIO()
    configure_logging("recommend", Settings(), stream=stream)
    app = create_base_app("recommend", title="t")

    @app.get("/work")
    def work() -> dict:
        logging.getLogger("genrec.test").warning("serving %s", "u1")
        return {}

    resp = TestClient(app).get("/work", headers={"x-request-id": "req-42"})
    assert resp.headers["x-request-id"] == "req-42"
    logging.getLogger("genrec.test").info("outside any request")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = next(line for line in lines if line["message"] == "serving u1")
    assert inside["request_id"] == "req-42" and inside["service"] == "recommend"
    assert inside["level"] == "WARNING" and inside["logger"] == "genrec.test" and "ts" in inside
    outside = next(line for line in lines if line["message"] == "outside any request")
    assert outside["request_id"] is None


def test_text_format_can_be_chosen() -> None:
    stream = io.StringIO()
    configure_logging("bridge", Settings.model_validate({"observability": {"log_format": "text"}}), stream=stream)
    logging.getLogger("genrec.test").warning("plain")
    assert stream.getvalue().rstrip().endswith("WARNING bridge genrec.test: plain")
