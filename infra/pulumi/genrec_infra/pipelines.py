"""Batch work: before the services start, the schema migration and the production model
repository (genrec image); the nightly pipeline (`genrec pipeline nightly`, the pipeline image
with pyspark and Java) as a CronJob."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from genrec_infra.appconfig import SERVICE_ACCOUNT, AppConfig
from genrec_infra.config import StackConfig
from genrec_infra.k8s import digest, labels


def _container(name: str, args: list[str], cfg: StackConfig, app: AppConfig, resources: dict,
               image: str | None = None) -> dict:
    return {
        "name": name,
        "image": image or cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,  # the entrypoint runs `genrec ARGS...`
        "envFrom": app.env_from(),
        "env": [{"name": "OTEL_SERVICE_NAME", "value": name}, *app.secret_env()],
        "resources": resources,
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }


# A batch pod must be able to finish: no mesh sidecar keeping it alive.
_NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


def _setup_job(job: str, args: list[str], cfg: StackConfig, app: AppConfig,
               opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """`genrec ARGS` once per image and config: Pulumi waits for it before what depends on it."""
    name = f"{job}-{digest([cfg.image, app.config_hash], 8)}"
    pod_labels = labels(job, "setup")
    return k8s.batch.v1.Job(
        job,
        metadata={"name": name, "namespace": cfg.namespaces.app, "labels": pod_labels},
        spec={
            "backoffLimit": 6,  # the stores may still be electing a primary on a first install
            "activeDeadlineSeconds": 1800,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": _NO_SIDECAR},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "containers": [_container(job, args, cfg, app,
                                              {"requests": {"cpu": "100m", "memory": "256Mi"},
                                               "limits": {"memory": "512Mi"}})],
                },
            },
        },
        opts=opts,
    )


def migration(cfg: StackConfig, app: AppConfig, opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """`genrec db migrate` before the services start."""
    return _setup_job("db-migrate", ["db", "migrate"], cfg, app, opts)


def model_repository(cfg: StackConfig, app: AppConfig, opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """The model server's repository at the InferenceService's storageUri, before it starts: a
    model that follows the production pointer (none promoted yet: it answers 503 with a reason)."""
    return _setup_job("model-repository", ["serve", "repository", "--production"], cfg, app, opts)


def create(cfg: StackConfig, app: AppConfig, opts: pulumi.ResourceOptions) -> k8s.batch.v1.CronJob:
    p = cfg.pipeline
    pod_labels = labels("nightly-pipeline", "pipeline")
    return k8s.batch.v1.CronJob(
        "nightly-pipeline",
        metadata={"name": "nightly-pipeline", "namespace": cfg.namespaces.app, "labels": pod_labels},
        spec={
            "schedule": p.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",  # a slow night must not overlap the next one
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {"spec": {
                "backoffLimit": 1,
                "activeDeadlineSeconds": p.deadline_s,
                "ttlSecondsAfterFinished": 7 * 24 * 3600,
                "template": {
                    "metadata": {"labels": pod_labels, "annotations": _NO_SIDECAR},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": SERVICE_ACCOUNT,
                        "containers": [_container("nightly-pipeline", list(p.args), cfg, app,
                                                  p.resources.to_k8s(), image=cfg.pipeline_image)],
                    },
                },
            }},
        },
        opts=opts,
    )
