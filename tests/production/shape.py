"""Run rendered production workloads on this machine, changing nothing but addresses.

A workload's container is started as its manifest says: its args through deploy/entrypoint.sh
(the images' entry point), its environment from the rendered ConfigMap, `env` values and
Secret references. Only what a cluster supplies is supplied here: the Secrets' values (made at
`pulumi up`), the service hostnames (mapped to this machine's servers), and what the runtime
gives a container (PORT, a loopback listen address, PATH to the installed environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genrec.devstack.process import ProcessRecord, spawn, stop, tail

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"


def load_objects(folder: Path) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object (Helm release descriptions are not objects)."""
    objs = [yaml.safe_load(p.read_text()) for p in sorted(folder.rglob("*.yaml"))]
    return [o for o in objs if isinstance(o, dict) and {"apiVersion", "kind", "metadata"} <= set(o)]


def find(objs: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def container_env(container: Mapping[str, Any], objs: list[dict[str, Any]],
                  secret_values: Mapping[str, str]) -> dict[str, str]:
    """The environment Kubernetes would give the container (Secret values from `secret_values`)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif (key := var["valueFrom"]["secretKeyRef"]["key"]) in secret_values:
            env[var["name"]] = secret_values[key]
    return env


def map_hosts(env: Mapping[str, str], hosts: Mapping[str, str]) -> dict[str, str]:
    """Replace each cluster address (`host` or `host:port`) by this machine's, longest first."""
    order = sorted(hosts, key=len, reverse=True)
    out = {}
    for key, value in env.items():
        for cluster in order:
            value = value.replace(cluster, hosts[cluster])
        out[key] = value
    return out


@dataclass
class Container:
    """One workload's container, started the way its pod would start it."""

    name: str
    args: list[str]
    env: dict[str, str]
    logs: Path
    record: ProcessRecord | None = None

    def runtime_env(self, port: int | None = None) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/tmp"),
               "PYTHONUNBUFFERED": "1", "GENREC_FUNCTIONS_DIR": str(REPO / "functions"), **self.env}
        if port is not None:  # Knative sets PORT; loopback instead of the pod's every-address bind
            env.update(PORT=str(port), HOST="127.0.0.1", LISTEN_ADDRESS=f"127.0.0.1:{port}")
        return env

    def start(self, cwd: Path, port: int | None = None, argv: list[str] | None = None) -> Container:
        """Start it in the background (`argv`: a runtime's own command instead of the entry point)."""
        self.record = spawn(argv or ["sh", str(ENTRYPOINT), *self.args], log_file=self.logs / f"{self.name}.log",
                            pid_file=self.logs / f"{self.name}.pid", env=self.runtime_env(port), cwd=cwd,
                            clean_env=True)
        return self

    def run(self, cwd: Path, timeout_s: float = 900) -> str:
        """Run it to completion, as a Job's pod; its output (an AssertionError with it on failure)."""
        out = subprocess.run(["sh", str(ENTRYPOINT), *self.args], env=self.runtime_env(), cwd=cwd,
                             capture_output=True, text=True, timeout=timeout_s)
        assert out.returncode == 0, f"{self.name} {self.args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout + out.stderr

    def stop(self) -> None:
        if self.record is not None:
            stop(self.record)

    def log_tail(self) -> str:
        return tail(self.logs / f"{self.name}.log", 40)
