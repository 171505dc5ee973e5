"""`genrec deploy render` writes every object the program registers; `genrec deploy check` passes on
them and names the file, object and field of each deliberately broken one."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from genrec.cli.deploy import app
from genrec.deploy import check, k8s_schemas, kserve_schema, manifests, mockrun, render, workloads
from genrec.deploy.invariants.addresses import dev_address
from genrec.deploy.invariants.images import built_images, image_name
from genrec.deploy.paths import NODE_VALIDATOR
from tests.infra.conftest import STACKS

runner = CliRunner()


@pytest.fixture(scope="module")
def registered() -> dict[str, dict[str, Any]]:
    return mockrun.run_isolated(STACKS)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folders = {}
    for stack in STACKS:
        folder = tmp_path_factory.mktemp(f"render-{stack}")
        result = runner.invoke(app, ["render", "--stack", stack, "--out", str(folder)])
        assert result.exit_code == 0, result.output
        folders[stack] = folder
    return folders


def _expected(data: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, namespace, name) → inputs with secret values as placeholders, for every cluster object."""
    secrets = {s["value"]: s["placeholder"] for s in data["secrets"]}
    out = {}
    for r in data["resources"]:
        inputs = render.placeholders(r["inputs"], secrets)
        if r["type"].startswith("kubernetes:helm.sh/"):
            out[("Release", inputs["namespace"], inputs["name"])] = inputs
        elif r["type"].startswith("kubernetes:"):
            out[(inputs["kind"], inputs["metadata"].get("namespace", ""), inputs["metadata"]["name"])] = inputs
    return out


# ------------------------------------------------------------------ render


@pytest.mark.parametrize("stack", STACKS)
def test_render_writes_every_registered_object_as_registered(stack, registered, rendered):
    expected = _expected(registered[stack])
    found = manifests.load(rendered[stack])
    assert len({m.file for m in found}) == len(found)  # one object per file
    assert {(m.kind, m.namespace, m.name) for m in found} == set(expected)
    assert len(found) > 60
    for m in found:
        if m.is_helm:
            continue
        assert m.obj == expected[(m.kind, m.namespace, m.name)], m.file
        assert m.file == f"{render.folder(m.obj)}/{render.file_name(m.obj)}"
    marker = json.loads((rendered[stack] / render.MARKER).read_text())
    assert marker["stack"] == stack
    assert sorted(marker["files"]) == sorted(m.file for m in found)
    assert {s.split()[0] for s in marker["skipped"]} == {"random:index/randomPassword:RandomPassword"}


def test_file_names_keep_same_named_kinds_apart(rendered):
    folder = rendered["prod"] / "genrec"
    assert (folder / "Service.serving.knative.dev-recommend.yaml").is_file()  # Knative Service
    assert (folder / "Service-recommend-metrics.yaml").is_file()  # core Service
    assert (rendered["prod"] / "_cluster" / "Namespace-genrec.yaml").is_file()
    assert (rendered["prod"] / "kafka" / "KafkaTopic.kafka.strimzi.io-user-events.yaml").is_file()


@pytest.mark.parametrize("stack", STACKS)
def test_secret_values_are_placeholders(stack, registered, rendered):
    text = "".join(p.read_text() for p in rendered[stack].rglob("*.yaml"))
    assert "GENpw" not in text and "GENcfg" not in text  # no mock-generated value is written
    owner = yaml.safe_load((rendered[stack] / "db" / "Secret-genrec-pg-owner.yaml").read_text())
    assert owner["stringData"]["password"] == "<generated at pulumi up: postgres-genrec>"
    app_secrets = yaml.safe_load((rendered[stack] / "genrec" / "Secret-genrec-app-secrets.yaml").read_text())
    assert "<generated at pulumi up: postgres-genrec>@" in app_secrets["stringData"]["GENREC_POSTGRES__DSN"]
    for s in registered[stack]["secrets"]:
        assert s["placeholder"] in text


@pytest.mark.parametrize("stack", STACKS)
def test_helm_releases_name_chart_repo_version_and_values(stack, registered, rendered):
    releases = [r["inputs"] for r in registered[stack]["resources"] if r["type"] == "kubernetes:helm.sh/v3:Release"]
    assert {r["name"] for r in releases} == {"redis-cluster", "milvus", "minio"}
    for inputs in releases:
        path = rendered[stack] / inputs["namespace"] / f"HelmRelease-{inputs['name']}.yaml"
        text = path.read_text()
        assert text.startswith("# Helm release, not a Kubernetes object")
        doc = yaml.safe_load(text)
        assert (doc["chart"], doc["version"], doc["repo"]) == (
            inputs["chart"], inputs["version"], inputs["repositoryOpts"]["repo"])
        assert doc["values"] == inputs["values"]


def test_rerender_replaces_only_the_previous_render(tmp_path):
    first = render.Rendered("dev", {"a/One-x.yaml": "kind: One\n", "b/Two-y.yaml": "kind: Two\n"})
    render.write(first, tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    render.write(render.Rendered("dev", {"a/One-x.yaml": "kind: One\n"}), tmp_path)
    assert (tmp_path / "a" / "One-x.yaml").is_file()
    assert not (tmp_path / "b").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    foreign = tmp_path / "foreign"
    (foreign / "x").mkdir(parents=True)
    with pytest.raises(render.RenderError, match="not empty"):
        render.write(first, foreign)


def test_render_rejects_an_unknown_stack(tmp_path):
    result = runner.invoke(app, ["render", "--stack", "staging", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no stack 'staging'" in result.output


# ------------------------------------------------------------------ check on the real render


@pytest.mark.parametrize("stack", STACKS)
def test_check_passes_on_the_real_render(stack, rendered):
    result = runner.invoke(app, ["check", str(rendered[stack])])
    assert result.exit_code == 0, result.output
    report = check.check(rendered[stack])
    assert report.production == (stack == "prod")
    # every object went through a schema or the explicit field rules, none only through its metadata
    covered = [f for validator, files in report.coverage.items() if "metadata only" not in validator for f in files]
    assert sorted(covered) == sorted(m.file for m in manifests.load(rendered[stack]))
    assert any(v.startswith("kubernetes ") for v in report.coverage)
    assert any(v.startswith("npm @kubernetes-models") for v in report.coverage)
    assert any(v.startswith("kserve ") for v in report.coverage)


# ------------------------------------------------------------------ check on broken objects


def _edit(folder: Path, rel: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / rel
    obj = yaml.safe_load(path.read_text())
    change(obj)
    path.write_text(yaml.safe_dump(obj, sort_keys=False))


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def _env_index(obj: dict[str, Any], name: str) -> int:
    return next(i for i, e in enumerate(_container(obj)["env"]) if e["name"] == name)


ADMIN = "genrec/Service.serving.knative.dev-admin-api.yaml"
ISVC = "genrec/InferenceService.serving.kserve.io-genrec-model.yaml"
CONFIG = "genrec/ConfigMap-genrec-config.yaml"
CRON = "genrec/CronJob-nightly-pipeline.yaml"
APP_SECRETS = "genrec/Secret-genrec-app-secrets.yaml"
USER_EVENTS = "kafka/KafkaTopic.kafka.strimzi.io-user-events.yaml"
SOURCE = "genrec/KafkaSource.sources.knative.dev-feature-update-user-events.yaml"


def _job(folder: Path) -> str:
    (path,) = (folder / "genrec").glob("Job-db-migrate-*.yaml")
    return path.relative_to(folder).as_posix()


def _break_secret_ref(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        ref = _container(obj)["env"][_env_index(obj, "GENREC_POSTGRES__DSN")]["valueFrom"]["secretKeyRef"]
        ref[key] = value
    return change


def _append_env(obj: dict[str, Any]) -> None:
    _container(obj)["env"].append({"name": "GENREC_MILVUS__URI", "value": "http://127.0.0.1:19530"})


def _drop_env(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda obj: _container(obj)["env"].pop(_env_index(obj, name))


# (id, file, change, object, field, source, message part); file None: the db-migrate Job (name has a hash)
BROKEN: list[tuple[str, str | None, Callable[[dict[str, Any]], None], str, str, str, str]] = [
    ("string containerPort", None,
     lambda o: _container(o).__setitem__("ports", [{"containerPort": "8080"}]),
     "Job/db-migrate-", "spec.template.spec.containers[0].ports[0].containerPort", "kubernetes",
     "is not of type 'integer'"),
    ("unknown core field", "genrec/Service-recommend-metrics.yaml",
     lambda o: o["spec"].__setitem__("clusterIp", "None"),
     "Service/recommend-metrics", "spec", "kubernetes", "'clusterIp' was unexpected"),
    ("Knative image not a string", "genrec/Service.serving.knative.dev-recommend.yaml",
     lambda o: _container(o).__setitem__("image", 5),
     "Service/recommend", "spec.template.spec.containers[0].image", "npm", "must be string"),
    ("Knative probe path not a string", "genrec/Service.serving.knative.dev-recommend.yaml",
     lambda o: _container(o)["readinessProbe"]["httpGet"].__setitem__("path", 5),
     "Service/recommend", "spec.template.spec.containers[0].readinessProbe.httpGet.path", "npm", "must be string"),
    ("KafkaSource delivery.retry not an integer", SOURCE,
     lambda o: o["spec"]["delivery"].__setitem__("retry", "3"),
     "KafkaSource/feature-update-user-events", "spec.delivery.retry", "npm", "must be integer"),
    ("loopback env value in prod", ADMIN, _append_env,
     "Service/admin-api", "spec.template.spec.containers[0].env[{n}].value", "invariant:no-dev-addresses",
     "127.0.0.1"),
    ("setting left to its dev default", CONFIG,
     lambda o: o["data"].pop("GENREC_KAFKA__BOOTSTRAP_SERVERS"),
     "Service/admin-api", "spec.template.spec.containers[0].env", "invariant:no-dev-addresses",
     "kafka.bootstrap_servers is not set"),
    ("function URLs left to the dev stack", CONFIG,
     lambda o: o["data"].pop("GENREC_FUNCTIONS__URLS"),
     "Service/admin-api", "spec.template.spec.containers[0].env", "invariant:no-dev-addresses",
     "GENREC_FUNCTIONS__URLS has no URL for admin-api, analytics-sink"),
    ("environment left to development", CONFIG,
     lambda o: o["data"].pop("GENREC_ENVIRONMENT"),
     "Service/admin-api", "spec.template.spec.containers[0].env", "invariant:production-environment",
     "GENREC_ENVIRONMENT is not set, not 'production'"),
    ("no ingest key from the Secret", ADMIN, _drop_env("GENREC_AUTH__INGEST_API_KEYS"),
     "Service/admin-api", "spec.template.spec.containers[0].env", "invariant:production-environment",
     "production refuses GENREC_AUTH__INGEST_API_KEYS: no key set"),
    ("development secret in the Secret", APP_SECRETS,
     lambda o: o["stringData"].__setitem__("GENREC_AUTH__JWT_SECRET", "dev-jwt-secret-change-me"),
     "CronJob/nightly-pipeline", "spec.jobTemplate.spec.template.spec.containers[0].env",
     "invariant:production-environment", "production refuses GENREC_AUTH__JWT_SECRET: the development default"),
    ("secretKeyRef to a missing Secret", ADMIN, _break_secret_ref("name", "no-such-secret"),
     "Service/admin-api", "spec.template.spec.containers[0].env[{dsn}].valueFrom.secretKeyRef", "invariant:secrets",
     "Secret genrec/no-such-secret is not created by this render"),
    ("secretKeyRef to a missing key", ADMIN, _break_secret_ref("key", "NOPE"),
     "Service/admin-api", "spec.template.spec.containers[0].env[{dsn}].valueFrom.secretKeyRef", "invariant:secrets",
     "has no key 'NOPE'"),
    ("secret value in a ConfigMap", CONFIG,
     lambda o: o["data"].__setitem__("LEAK", "<generated at pulumi up: redis>"),
     "ConfigMap/genrec-config", "data.LEAK", "invariant:secrets", "outside a Secret"),
    ("KafkaTopic without partitions", USER_EVENTS,
     lambda o: o["spec"].__setitem__("partitions", "many"),
     "KafkaSource/feature-update-user-events", "spec.topics[0]", "invariant:topics", "sets no partition count"),
    ("KafkaTopic partitions not an integer", USER_EVENTS,
     lambda o: o["spec"].__setitem__("partitions", "many"),
     "KafkaTopic/user-events", "spec.partitions", "fields", "must be a positive integer"),
    ("storageUri nothing writes", ISVC,
     lambda o: o["spec"]["predictor"]["model"].__setitem__("storageUri", "s3://genrec/models/genrec"),
     "InferenceService/genrec-model", "spec.predictor.model.storageUri", "invariant:model-store",
     "not where genrec writes a Triton repository"),
    ("InferenceService minReplicas not an integer", ISVC,
     lambda o: o["spec"]["predictor"].__setitem__("minReplicas", "2"),
     "InferenceService/genrec-model", "spec.predictor.minReplicas", "kserve", "is not of type 'integer'"),
    ("InferenceService unknown predictor field", ISVC,
     lambda o: o["spec"]["predictor"].__setitem__("minReplica", 2),
     "InferenceService/genrec-model", "spec.predictor", "kserve", "'minReplica' was unexpected"),
    ("image no Dockerfile builds", CRON,
     lambda o: o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].__setitem__(
         "image", "ghcr.io/genrec/genrec-spark:0.1.0"),
     "CronJob/nightly-pipeline", "spec.jobTemplate.spec.template.spec.containers[0].image", "invariant:images",
     "built by no file in deploy/"),
]


@pytest.fixture
def prod_copy(rendered, tmp_path) -> Path:
    return Path(shutil.copytree(rendered["prod"], tmp_path / "render"))


@pytest.mark.parametrize(("file", "change", "obj", "field", "source", "message"),
                         [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_check_names_the_broken_object_and_field(prod_copy, file, change, obj, field, source, message):
    rel = file or _job(prod_copy)
    before = yaml.safe_load((prod_copy / rel).read_text())
    _edit(prod_copy, rel, change)
    if "{" in field:  # env indexes: one appended, or the DSN's
        field = field.format(n=len(_container(before)["env"]), dsn=_env_index(before, "GENREC_POSTGRES__DSN"))
    result = runner.invoke(app, ["check", str(prod_copy)])
    assert result.exit_code == 1, result.output
    hits = [p for p in check.check(prod_copy).problems
            if p.obj.startswith(obj) and p.field == field and p.source.startswith(source) and message in p.message]
    assert hits, "\n".join(str(p) for p in check.check(prod_copy).problems)
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert f"{hits[0].file}: {hits[0].obj} {field}:" in flat


@pytest.mark.parametrize("stack", STACKS)
def test_every_genrec_process_runs_as_production(stack, rendered):
    # Every stack is production: each container that reads genrec's settings sees
    # GENREC_ENVIRONMENT=production and every secret that production refuses to default.
    objs = manifests.load(rendered[stack])
    by_key = manifests.index([m for m in objs if not m.is_helm])
    genrec = {}
    for m in objs:
        for c in [] if m.is_helm else workloads.containers(m):
            env = workloads.resolved_env(c, by_key)
            if any(name.startswith("GENREC_") for name in env):
                genrec[f"{m.kind}/{m.name}"] = env
    kinds = {label.split("/")[0] for label in genrec}
    assert kinds == {"Service", "Job", "CronJob", "InferenceService"}, sorted(genrec)
    assert len([k for k in genrec if k.startswith("Service/")]) == 8  # the seven workloads and recommend-grpc
    for label, env in genrec.items():
        assert env["GENREC_ENVIRONMENT"].value == "production", label
        for secret in ("GENREC_AUTH__ADMIN_TOKENS", "GENREC_AUTH__INGEST_API_KEYS", "GENREC_AUTH__JWT_SECRET",
                       "GENREC_S3__SECRET_ACCESS_KEY"):
            assert env[secret].obj == "Secret/genrec-app-secrets", (label, secret)


def test_missing_kafka_topic_is_named_on_every_reader(prod_copy):
    (prod_copy / USER_EVENTS).unlink()
    problems = [p for p in check.check(prod_copy).problems if p.source == "invariant:topics"]
    readers = {p.obj for p in problems}
    assert "KafkaSource/feature-update-user-events" in readers and len(readers) >= 2
    assert all(p.field == "spec.topics[0]" and "'user_events' has no KafkaTopic" in p.message for p in problems)


def test_dev_address_rule_is_for_production_stacks(rendered, tmp_path):
    dev = Path(shutil.copytree(rendered["dev"], tmp_path / "dev"))
    _edit(dev, ADMIN, _append_env)
    assert check.check(dev).ok
    flagged = check.check(dev, production=True).problems
    assert [p.source for p in flagged] == ["invariant:no-dev-addresses"]


def test_missing_node_models_fail_loudly(rendered, tmp_path, monkeypatch):
    from genrec.deploy import node_models

    monkeypatch.setattr(node_models, "NODE_VALIDATOR", tmp_path)  # a folder without node_modules
    result = runner.invoke(app, ["check", str(rendered["prod"])])
    assert result.exit_code == 2
    assert "make install" in " ".join(result.output.split())


# ------------------------------------------------------------------ the pieces


def test_node_validator_runs_on_its_own(rendered, tmp_path):
    good = rendered["prod"] / "genrec" / "VirtualService.networking.istio.io-recommend.yaml"
    bad = tmp_path / "bad.yaml"
    obj = yaml.safe_load(good.read_text())
    obj["spec"]["hosts"] = "api.genrec.example.com"  # a string where Istio wants a list
    bad.write_text(yaml.safe_dump(obj))
    out = subprocess.run(["node", "validate.mjs", str(good), str(bad)], cwd=NODE_VALIDATOR, capture_output=True,
                         text=True, check=True).stdout
    first, second = json.loads(out)
    assert first["status"] == "valid"
    assert second["status"] == "invalid" and second["errors"][0]["path"] == ["spec", "hosts"]


@pytest.mark.parametrize(("text", "hit"), [
    ("http://127.0.0.1:17075", "127.0.0.1"),
    ("redis://:pw@localhost:6379/0", "localhost"),
    ("http://[::1]:8080", "[::1]"),
    ("registry.localhost:5000", "registry.localhost"),
    ("/app/.genrec/data/chdb", ".genrec"),
    ("http://recommend.genrec.svc.cluster.local", None),
    ("genrec-pg-rw.db.svc.cluster.local:5432", None),
    ("fe80::1", None),
    ("10.127.0.0.1x", None),
])
def test_dev_address(text, hit):
    assert dev_address(text) == hit


def test_image_names_map_to_dockerfiles():
    assert image_name("registry.localhost:5000/genrec:dev") == "genrec"
    assert image_name("ghcr.io/genrec/genrec-serving@sha256:abc") == "genrec-serving"
    built = built_images()
    assert built["genrec"] == "deploy/Dockerfile"
    assert built["genrec-serving"] == "deploy/Dockerfile.serving"
    assert built["genrec-event-capture"] == "deploy/Dockerfile --build-arg WORKLOAD=event-capture"
    assert not any(name.endswith("dockerignore") for name in built)


_MODEL_SOURCE = '''
class V1beta1PredictorSpec(object):
    openapi_types = {"min_replicas": "int", "containers": "list[V1Container]", "labels": "dict(str, str)",
                     "scale_metric": "str", "mystery": "V1beta1Unknown"}
    attribute_map = {"min_replicas": "minReplicas", "containers": "containers", "labels": "labels",
                     "scale_metric": "scaleMetric", "mystery": "mystery"}

    @scale_metric.setter
    def scale_metric(self, scale_metric):
        allowed_values = ["cpu", "concurrency"]

class V1beta1InferenceServiceSpec(object):
    openapi_types = {"predictor": "V1beta1PredictorSpec"}
    attribute_map = {"predictor": "predictor"}

    @predictor.setter
    def predictor(self, predictor):
        if predictor is None:
            raise ValueError("Invalid value for `predictor`, must not be `None`")

class V1beta1InferenceService(object):
    openapi_types = {"api_version": "str", "kind": "str", "metadata": "V1ObjectMeta",
                     "spec": "V1beta1InferenceServiceSpec"}
    attribute_map = {"api_version": "apiVersion", "kind": "kind", "metadata": "metadata", "spec": "spec"}
'''


def test_kserve_schema_from_the_sdk_models(tmp_path):
    wheel = tmp_path / "kserve-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("kserve/models/v1beta1_all.py", _MODEL_SOURCE)
        zf.writestr("kserve-9.9.9.dist-info/METADATA", "Name: kserve\nVersion: 9.9.9\n")
    version, models = kserve_schema.read_models(wheel)
    schema = kserve_schema.build(version, models, k8s_schemas.definition_names())
    predictor = schema["$defs"]["V1beta1PredictorSpec"]
    assert version == "9.9.9" and schema["x-unresolved-types"] == ["V1beta1Unknown"]
    assert predictor["properties"]["scaleMetric"]["enum"] == ["cpu", "concurrency"]
    assert schema["$defs"]["V1beta1InferenceServiceSpec"]["required"] == ["predictor"]
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "m"},
            "spec": {"predictor": {"minReplicas": "1", "scaleMetric": "rps",
                                   "containers": [{"name": "c", "image": 5}]}}}
    errors = {tuple(path) for path, _msg in k8s_schemas.errors_against(schema, isvc)}
    assert errors == {("spec", "predictor", "minReplicas"), ("spec", "predictor", "scaleMetric"),
                      ("spec", "predictor", "containers", 0, "image")}
    assert not k8s_schemas.errors_against(schema, {**isvc, "spec": {"predictor": {"minReplicas": 1}}})


def test_the_shipped_kserve_schema_is_the_generated_one():
    schema = kserve_schema.load()
    assert schema["x-kserve-version"] == "0.21.0"
    predictor = schema["$defs"]["V1beta1PredictorSpec"]["properties"]
    assert {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent", "model",
            "serviceAccountName", "tolerations"} <= set(predictor)
    assert predictor["model"] == {"$ref": "#/$defs/V1beta1ModelSpec"}
