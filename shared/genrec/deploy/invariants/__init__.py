"""genrec's own rules over a render, beyond any schema. Each module has `check(Context) -> list[Problem]`.

    addresses    production workloads name no loopback / dev-stack address, not even by default
    secrets      every Secret / ServiceAccount read is created; secret values stay in Secrets
    images       every image is built by a Dockerfile in deploy/ (or is a listed third-party one)
    topics       every topic a KafkaSource reads / KafkaSink writes has a KafkaTopic with partitions
    model_store  an InferenceService's storageUri is where genrec writes its Triton repository
    environment  every genrec container runs as production, with settings production accepts
"""

from __future__ import annotations

from collections.abc import Callable

from genrec.deploy.invariants import addresses, environment, images, model_store, secrets, topics
from genrec.deploy.invariants.context import Context
from genrec.deploy.problems import Problem

ALL: dict[str, Callable[[Context], list[Problem]]] = {
    "addresses": addresses.check,
    "secrets": secrets.check,
    "images": images.check,
    "topics": topics.check,
    "model_store": model_store.check,
    "environment": environment.check,
}


def run(ctx: Context) -> list[Problem]:
    return [p for check in ALL.values() for p in check(ctx)]
