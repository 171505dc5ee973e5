"""GENREC_ENVIRONMENT=production: a process with a development default secret, a weak one or no
ingest key does not start, naming each setting; with its own secrets it starts; development (the
local stack, tests, `make demo`) is unchanged. Processes are started as a pod starts them, through
deploy/entrypoint.sh (a Knative function under func-python, an HTTP service under uvicorn, a CLI job)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import (
    DEV_JWT_SECRET,
    Settings,
    SettingsRefused,
    UncheckedSettings,
    production_problems,
)
from genrec.devstack.process import wait_until

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
# A deployment's own values, as the Pulumi program generates them.
OWN = {
    "GENREC_AUTH__ADMIN_TOKENS": json.dumps({"admin": "a" * 48}),
    "GENREC_AUTH__INGEST_API_KEYS": json.dumps({"default": "k" * 48}),
    "GENREC_AUTH__JWT_SECRET": "j" * 64,
    "GENREC_S3__SECRET_ACCESS_KEY": "s" * 40,
}
EVERY_DEV_DEFAULT = ("GENREC_AUTH__ADMIN_TOKENS", "GENREC_AUTH__JWT_SECRET", "GENREC_AUTH__INGEST_API_KEYS",
                     "GENREC_S3__SECRET_ACCESS_KEY")


def _production(**overrides: str) -> dict[str, str]:
    return {"GENREC_ENVIRONMENT": "production", **OWN, **overrides}


# ------------------------------------------------------------------ the settings


def test_development_keeps_its_defaults(clean_env: Path) -> None:
    s = Settings()
    assert s.environment == "development"
    assert s.auth.admin_tokens["admin"].get_secret_value() == "dev-admin-token"
    assert s.auth.jwt_secret.get_secret_value() == DEV_JWT_SECRET
    assert {p.setting for p in production_problems(s)} == set(EVERY_DEV_DEFAULT)  # allowed here


def test_production_refuses_every_development_default_naming_its_variable(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_ENVIRONMENT", "production")
    with pytest.raises(SettingsRefused) as refused:
        Settings()
    assert [p.setting for p in refused.value.problems] == [
        "GENREC_AUTH__ADMIN_TOKENS", "GENREC_AUTH__ADMIN_TOKENS", "GENREC_AUTH__JWT_SECRET",
        "GENREC_AUTH__INGEST_API_KEYS", "GENREC_S3__SECRET_ACCESS_KEY"]
    message = str(refused.value)
    assert message.startswith("GENREC_ENVIRONMENT=production refuses these settings")
    assert "GENREC_AUTH__INGEST_API_KEYS: no key set" in message
    assert "dev-jwt-secret" not in message and "dev-admin-token" not in message  # names, never values


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("GENREC_AUTH__JWT_SECRET", DEV_JWT_SECRET, "the development default"),
    ("GENREC_AUTH__JWT_SECRET", "x" * 31, "shorter than 32 bytes"),
    ("GENREC_AUTH__ADMIN_TOKENS", json.dumps({"ops": "a" * 48, "old": "dev-viewer-token"}),
     "token 'old' is a development default"),
    ("GENREC_AUTH__ADMIN_TOKENS", json.dumps({"ops": "short"}), "token 'ops' is shorter than 16 characters"),
    ("GENREC_AUTH__INGEST_API_KEYS", "{}", "no key set"),
    ("GENREC_AUTH__INGEST_API_KEYS", json.dumps({"shop": "123"}), "key 'shop' is shorter than 16 characters"),
    ("GENREC_S3__SECRET_ACCESS_KEY", "genrec-local-secret", "development key"),
])
def test_production_refuses_one_bad_secret(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                           variable: str, value: str, why: str) -> None:
    for key, v in _production(**{variable: value}).items():
        monkeypatch.setenv(key, v)
    with pytest.raises(SettingsRefused) as refused:
        Settings()
    (problem,) = refused.value.problems
    assert problem.setting == variable and why in problem.reason


def test_production_starts_with_its_own_secrets(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, v in _production().items():
        monkeypatch.setenv(key, v)
    s = Settings()
    assert s.environment == "production" and production_problems(s) == []
    assert UncheckedSettings(auth={"jwt_secret": "weak"}).auth.jwt_secret.get_secret_value() == "weak"  # reports


# ------------------------------------------------------------------ genrec config check


def test_config_check_verdict(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: GENREC_ENVIRONMENT=development")
    assert "\nproduction would refuse:\n" in result.output  # allowed here, but said
    assert "\n  GENREC_AUTH__JWT_SECRET: the development default\n" in result.output

    monkeypatch.setenv("GENREC_ENVIRONMENT", "production")
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 1
    assert result.output.startswith("refused: GENREC_ENVIRONMENT=production")
    for variable in EVERY_DEV_DEFAULT:
        assert f"  {variable}: " in result.output

    for key, v in OWN.items():
        monkeypatch.setenv(key, v)
    result = runner.invoke(app, ["config", "check"])
    assert (result.exit_code, result.output) == (0, "ok: GENREC_ENVIRONMENT=production\n")

    monkeypatch.setenv("GENREC_MODEL__MAX_HISTORY", "5000")  # not even loadable: named, no traceback
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 1 and "GENREC_MODEL__MAX_HISTORY: " in result.output


# ------------------------------------------------------------------ real processes


def _process_env(cwd: Path, extra: dict[str, str]) -> dict[str, str]:
    """A pod's environment: nothing of this session's GENREC_* settings, the venv on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    return {"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", str(cwd)),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1",
            **{k: os.environ[k] for k in ("GENREC_SERVING_PYTHON",) if k in os.environ},  # where .venv-serving is
            "GENREC_FUNCTIONS_DIR": str(REPO / "functions"), "GENREC_STACK__STATE_DIR": str(cwd / ".genrec"), **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# (entry point args, health path): a Knative function under func-python, an HTTP service under uvicorn
SERVERS = {
    "function": (["function", "event-capture"], "/health/liveness"),
    "service": (["service", "genrec.apps.admin:create_app"], "/healthz"),
}


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_a_production_server_with_a_development_secret_does_not_start(tmp_path: Path, kind: str) -> None:
    args, _health = SERVERS[kind]
    port = _free_port()
    env = _process_env(tmp_path, {**_production(GENREC_AUTH__JWT_SECRET=DEV_JWT_SECRET), "PORT": str(port),
                                  "HOST": "127.0.0.1", "LISTEN_ADDRESS": f"127.0.0.1:{port}"})
    out = subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "GENREC_AUTH__JWT_SECRET: the development default" in out.stderr, out.stderr[-3000:]


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_a_production_server_with_its_own_secrets_starts(tmp_path: Path, kind: str) -> None:
    args, health = SERVERS[kind]
    port = _free_port()
    env = _process_env(tmp_path, {**_production(), "PORT": str(port), "HOST": "127.0.0.1",
                                  "LISTEN_ADDRESS": f"127.0.0.1:{port}"})
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env, cwd=tmp_path, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        up = wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}{health}", timeout=2).status_code == 200,
                        timeout_s=120, alive=lambda: proc.poll() is None)
        assert up, log.read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# A CronJob's or Job's command, the bridge, the model server (`genrec serve start` execs Triton's
# launcher in the serving environment): the message and a non-zero exit, no traceback.
@pytest.mark.parametrize(("args", "code"), [
    (["pipeline", "nightly"], os.EX_CONFIG),
    (["db", "migrate"], os.EX_CONFIG),
    (["events", "bridge"], os.EX_CONFIG),
    (["serve", "start", "--no-feed"], 1),
], ids=["pipeline-nightly", "db-migrate", "events-bridge", "serve-start"])
def test_a_production_job_with_a_development_secret_does_not_start(tmp_path: Path, args: list[str],
                                                                    code: int) -> None:
    env = _process_env(tmp_path, _production(GENREC_S3__SECRET_ACCESS_KEY="genrec-local-secret"))
    out = subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stdout + out.stderr
    assert out.stderr.startswith("GENREC_ENVIRONMENT=production refuses these settings"), out.stderr[-3000:]
    assert "GENREC_S3__SECRET_ACCESS_KEY: the local stack's development key" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("extra", "code", "verdict"), [
    ({}, 1, "refused: GENREC_ENVIRONMENT=production"),
    (OWN, 0, "ok: GENREC_ENVIRONMENT=production"),
])
def test_config_check_as_a_process(tmp_path: Path, extra: dict[str, str], code: int, verdict: str) -> None:
    env = _process_env(tmp_path, {"GENREC_ENVIRONMENT": "production", **extra})
    out = subprocess.run(["sh", str(ENTRYPOINT), "config", "check"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == code and out.stdout.startswith(verdict), out.stdout + out.stderr


def test_a_service_in_its_image_limits_the_connection_not_a_forwarded_header(tmp_path: Path) -> None:
    """Behind the queue-proxy every connection comes from 127.0.0.1: a server that believed the
    X-Forwarded-For of such peers would let each caller name its own address, and so its own rate limit."""
    args, health = SERVERS["service"]
    port = _free_port()
    env = _process_env(tmp_path, {**_production(GENREC_AUTH__ANONYMOUS_RATE_LIMIT_PER_S="0.5"), "PORT": str(port),
                                  "HOST": "127.0.0.1"})
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env, cwd=tmp_path, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        up = wait_until(lambda: httpx.get(url + health, timeout=2).status_code == 200, timeout_s=120,
                        alive=lambda: proc.poll() is None)
        assert up, log.read_text()[-3000:]
        statuses = [httpx.get(url + "/api/v1/overview", headers={"x-forwarded-for": f"203.0.113.{i}"},
                              timeout=10).status_code for i in range(4)]
        assert 429 in statuses, statuses  # one bucket for the one peer address, whatever the header says
    finally:
        proc.terminate()
        proc.wait(timeout=30)
