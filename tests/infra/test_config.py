"""The typed stack config: camelCase keys layered over defaults, typos rejected."""

from __future__ import annotations

import pytest
import yaml
from genrec_infra.config import Resources, StackConfig, build

from tests.infra.conftest import PROGRAM, STACKS


def _load(stack: str) -> StackConfig:
    raw = yaml.safe_load((PROGRAM / f"Pulumi.{stack}.yaml").read_text())["config"]
    sections = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("genrec:")}
    return build(StackConfig, sections, StackConfig(stack=stack))


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_parse(stack):
    cfg = _load(stack)
    assert cfg.workloads["recommend"].min_scale >= 1


def test_layering_keeps_unset_defaults():
    cfg = build(StackConfig, {"workloads": {"recommend": {"maxScale": 7}}, "kafka": {"replication": 1}})
    assert cfg.workloads["recommend"].max_scale == 7
    assert cfg.workloads["recommend"].min_scale == StackConfig().workloads["recommend"].min_scale
    assert cfg.kafka.replication == 1 and cfg.kafka.broker_replicas == 3
    assert "event-capture" in cfg.workloads


def test_unknown_key_is_an_error():
    with pytest.raises(ValueError, match=r"kafka\.replicaton"):
        build(StackConfig, {"kafka": {"replicaton": 3}})


def test_gpu_resources():
    assert Resources("1", "1Gi", gpu=1).to_k8s()["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in Resources("1", "1Gi").to_k8s()["limits"]


def test_dev_is_small_and_prod_is_replicated():
    dev, prod = _load("dev"), _load("prod")
    assert dev.kafka.broker_replicas == 1 and prod.kafka.broker_replicas >= 3
    assert dev.model.resources.gpu == 0 and prod.model.resources.gpu == 1
    assert dev.postgres.instances == 1 and prod.postgres.instances >= 3


def test_a_cpu_request_in_whole_cores():
    assert [Resources(cpu).whole_cores() for cpu in ("4", "2.5", "500m", "1500m", "0.2")] == [4, 2, 1, 1, 1]
