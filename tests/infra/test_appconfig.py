"""The ConfigMap + Secret render genrec's Settings so that the apps read back the production values."""

from __future__ import annotations

from pydantic import SecretStr

from genrec.config import Settings, production_problems


def _settings_from(run) -> tuple[Settings, dict]:
    return run.settings(), run.named("core/v1:ConfigMap", "genrec-config")["data"]


def test_settings_round_trip(run):
    s, env = _settings_from(run)
    topics = {r["inputs"]["spec"]["topicName"]: r["inputs"]["spec"] for r in run.of("KafkaTopic")}
    for t in s.kafka.topics.values():
        assert topics[t.name]["partitions"] == t.partitions
        assert topics[t.name]["replicas"] == t.replication
    sources = run.of("KafkaSource")
    assert {src["inputs"]["spec"]["bootstrapServers"][0] for src in sources} == {s.kafka.bootstrap_servers}
    assert s.redis.cluster is True
    assert not s.embedded  # ClickHouse server, not the in-process chDB
    assert s.postgres.dsn.get_secret_value().startswith("postgresql://genrec:")
    assert ".svc.cluster.local" in s.postgres.dsn.get_secret_value()
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http")
    assert s.auth.admin_tokens and s.auth.jwt_secret.get_secret_value() != "dev-jwt-secret-change-me"


def test_every_stack_is_production_with_generated_secrets(run):
    # Settings() refuses production with a development or weak secret (SettingsRefused): the
    # program's generated values are accepted, so the workloads start.
    s, env = _settings_from(run)
    assert env["GENREC_ENVIRONMENT"] == "production" and s.environment == "production"
    assert production_problems(s) == []
    assert set(s.auth.admin_tokens) == {"admin"} and s.auth.ingest_api_keys


def test_only_non_secret_values_in_config_map(run):
    s, env = _settings_from(run)
    secret_keys = set(run.named("core/v1:Secret", "genrec-app-secrets")["stringData"])
    assert not secret_keys & set(env)
    # every secret field genrec uses in production comes from the Secret
    for section in ("postgres.dsn", "redis.url", "clickhouse.url", "s3.secret_access_key", "auth.jwt_secret"):
        first, field = section.split(".")
        assert isinstance(getattr(getattr(s, first), field), SecretStr)
        assert f"GENREC_{first.upper()}__{field.upper()}" in secret_keys


def test_workloads_share_one_config(run):
    hashes = {svc["spec"]["template"]["metadata"]["annotations"]["genrec.dev/config-hash"]
              for svc in run.knative_services().values()}
    assert len(hashes) == 1
    for svc in run.knative_services().values():
        (c,) = svc["spec"]["template"]["spec"]["containers"]
        assert c["envFrom"] == [{"configMapRef": {"name": "genrec-config"}}]


def test_callers_reach_every_workload_at_its_cluster_address(run):
    # The admin API posts events and asks for recommendations through function_url: in a pod,
    # the local stack's loopback address would reach nothing.
    s, _env = _settings_from(run)
    for name, svc in run.knative_services().items():
        url = s.function_url(name.replace("-", "_"))
        assert url == f"http://{name}.{svc['metadata']['namespace']}.svc.cluster.local", (name, url)
