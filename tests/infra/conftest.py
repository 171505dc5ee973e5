"""Run the Pulumi program once per stack (each in its own interpreter, under mocks) and share the result."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from genrec.config import Settings
from genrec.deploy import mockrun

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROGRAM = REPO / "infra" / "pulumi"
STACKS = ("dev", "prod")
FAKE_LLM_KEY = "sk-test-" + "7" * 40  # a secret set through `pulumi config set --secret`

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

    def settings(self) -> Settings:
        """genrec's Settings as a pod of this stack reads them (its ConfigMap and Secret)."""
        env = self.named("core/v1:ConfigMap", "genrec-config")["data"]
        secret = self.named("core/v1:Secret", "genrec-app-secrets")["stringData"]  # production refuses it without
        with mock.patch.dict(os.environ, {**env, **secret}, clear=True):
            return Settings()

    def stack_config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((PROGRAM / f"Pulumi.{self.stack}.yaml").read_text())["config"]


@pytest.fixture(scope="session")
def runs() -> Iterator[dict[str, Run]]:
    # One interpreter per stack (the Pulumi runtime is global state), both in parallel.
    data = mockrun.run_isolated(STACKS, extra_secrets={"llmApiKey": FAKE_LLM_KEY})
    yield {stack: Run(stack, d["resources"],
                      [s["value"] for s in d["secrets"] if s["origin"] == "generated"],
                      [s["value"] for s in d["secrets"] if s["origin"] == "config"])
           for stack, d in data.items()}


@pytest.fixture(params=STACKS)
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    return runs[request.param]
