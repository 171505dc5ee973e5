"""Run the Pulumi program once per stack (each in its own interpreter, under mocks) and share the result."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROGRAM = REPO / "infra" / "pulumi"
STACKS = ("dev", "prod")

if str(PROGRAM) not in sys.path:  # the program's package, for tests of its pure functions
    sys.path.insert(0, str(PROGRAM))


@dataclass
class Run:
    """What one stack registered: resources with their (secret-unwrapped) inputs."""

    stack: str
    resources: list[dict[str, Any]]
    generated_secrets: list[str]
    config_secrets: list[str]

    def of(self, type_suffix: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"].endswith(type_suffix)]

    def knative_services(self) -> dict[str, dict[str, Any]]:
        return {r["inputs"]["metadata"]["name"]: r["inputs"] for r in self.of("serving.knative.dev/v1:Service")}

    def named(self, type_suffix: str, name: str) -> dict[str, Any]:
        found = [r["inputs"] for r in self.of(type_suffix) if r["inputs"]["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {type_suffix} named {name}, found {len(found)}"
        return found[0]

    def stack_config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((PROGRAM / f"Pulumi.{self.stack}.yaml").read_text())["config"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    out_dir = tmp_path_factory.mktemp("pulumi-mocks")
    procs = {}
    for stack in STACKS:  # in parallel: each is a separate interpreter
        out = out_dir / f"{stack}.json"
        procs[stack] = (out, subprocess.Popen(
            [sys.executable, str(HERE / "run_stack.py"), stack, str(out)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    results = {}
    for stack, (out, proc) in procs.items():
        log, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"Pulumi program failed for stack {stack}:\n{log}"
        data = json.loads(out.read_text())
        results[stack] = Run(stack, data["resources"], data["generated_secrets"], data["config_secrets"])
    yield results


@pytest.fixture(params=STACKS)
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    return runs[request.param]
