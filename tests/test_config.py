"""Config precedence (env over file over default), derived endpoints and secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import Settings


def test_defaults_point_at_embedded_stack(clean_env: Path) -> None:
    s = Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:17010"
    assert s.s3.endpoint_url == "http://127.0.0.1:17000"
    assert s.postgres.dsn.get_secret_value() == "postgresql://postgres@127.0.0.1:17020/postgres"
    assert s.redis.url.get_secret_value() == "redis://127.0.0.1:17030/0"
    assert s.milvus.uri == "http://127.0.0.1:17040"
    assert s.embedded and s.clickhouse.chdb_path == Path(".genrec/data/chdb")


def test_port_base_moves_every_local_endpoint(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_STACK__PORT_BASE", "30000")
    s = Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:30010"
    assert s.model_server.url == "127.0.0.1:30050"
    assert s.function_url("recommend") == "http://127.0.0.1:30074"


def test_configured_function_urls_win_over_the_local_stack(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_FUNCTIONS__URLS", '{"event-capture": "http://event-capture.genrec.svc.cluster.local/"}')
    s = Settings()
    assert s.function_url("event_capture") == "http://event-capture.genrec.svc.cluster.local"
    assert s.function_url("event-capture") == "http://event-capture.genrec.svc.cluster.local"
    assert s.function_url("recommend") == "http://127.0.0.1:17074"  # not configured: the local address


def test_env_over_file_over_default(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "genrec.toml").write_text(
        '[kafka]\nbootstrap_servers = "file-broker:9092"\n'
        '[redis]\nurl = "redis://file-redis:6379/0"\n'
        "[model]\nmax_history = 50\n"
    )
    monkeypatch.setenv("GENREC_KAFKA__BOOTSTRAP_SERVERS", "env-broker:9092")
    s = Settings()
    assert s.kafka.bootstrap_servers == "env-broker:9092"  # env beats file
    assert s.redis.url.get_secret_value() == "redis://file-redis:6379/0"  # file beats default
    assert s.model.max_history == 50
    assert s.postgres.dsn.get_secret_value().endswith(":17020/postgres")  # default remains


def test_config_file_path_from_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = clean_env / "prod.toml"
    other.write_text('[s3]\nendpoint_url = "https://minio.prod:9000"\nbucket = "recs"\n')
    monkeypatch.setenv("GENREC_CONFIG", str(other))
    s = Settings()
    assert (s.s3.endpoint_url, s.s3.bucket) == ("https://minio.prod:9000", "recs")


def test_invalid_value_is_refused_with_field_name(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_MODEL__MAX_HISTORY", "5000")
    with pytest.raises(ValueError, match="max_history"):
        Settings()


def test_config_show_masks_secrets(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_POSTGRES__DSN", "postgresql://app:hunter2@db.prod:5432/genrec")
    monkeypatch.setenv("GENREC_LLM__API_KEY", "sk-very-secret")
    monkeypatch.setenv("GENREC_S3__SECRET_ACCESS_KEY", "s3-very-secret")
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "sk-very-secret" not in result.output
    assert "s3-very-secret" not in result.output
    assert "postgresql://app:****@db.prod:5432/genrec" in result.output
