"""Freshness first, in the cluster: each workload's priority (genrec.workloads) as a PriorityClass.

Where nodes are short of CPU, the scheduler places realtime pods (the freshness path and the
request/response APIs) before bulk ones and may evict bulk pods to make room; bulk pods never
evict anything (``preemptionPolicy: Never``). The dev stack states the same order with nice values.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from genrec.workloads import PRIORITIES, Priority
from genrec_infra.k8s import labels

# Above the default (0) for realtime, below it for bulk: other tenants' pods sit between.
VALUES: dict[Priority, int] = {"realtime": 1000, "bulk": -1000}
PREEMPTS: dict[Priority, bool] = {"realtime": True, "bulk": False}


def class_name(priority: Priority) -> str:
    return f"genrec-{priority}"


def create(opts: pulumi.ResourceOptions | None = None) -> dict[Priority, k8s.scheduling.v1.PriorityClass]:
    """The PriorityClasses (cluster-scoped)."""
    return {
        p: k8s.scheduling.v1.PriorityClass(
            class_name(p), metadata={"name": class_name(p), "labels": labels(class_name(p), "priority")},
            value=VALUES[p], global_default=False,
            preemption_policy="PreemptLowerPriority" if PREEMPTS[p] else "Never",
            description=f"genrec {p} workloads (genrec.workloads)", opts=opts)
        for p in PRIORITIES
    }
