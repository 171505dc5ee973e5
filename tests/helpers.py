"""Small helpers shared by tests: local stacks on free ports, reading the real broker."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

from genrec.config import PORT_OFFSETS, Settings
from genrec.devstack.process import port_is_free
from genrec.devstack.services import REDIS_CLUSTER_BUS_OFFSET, SEAWEED_GRPC_OFFSET
from genrec.events.codec import EventError, ValidEvent, from_kafka
from genrec.events.kafka import consumer

# qemu-user's emulated CPU has AVX2 but no AVX-512: what most AMD machines, many laptops and
# CI runners have. `make install` installs it (Debian's qemu-user).
NO_AVX512_EMULATOR = "qemu-x86_64 -cpu max"


def ephemeral_ports() -> range:
    """The kernel's range for the local ports of outgoing connections. A server restarted while the
    machine is busy can find its port taken by one of them (EADDRINUSE), so test stacks stay out."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port_base(host: str = "127.0.0.1", taken: int | None = None) -> int:
    """A port base whose every derived port (and SeaweedFS grpc twin, and the Redis cluster bus
    port) is free and outside the ephemeral range, and that shares none with the stack at base
    `taken` (which may not have bound its ports yet)."""
    rng = random.Random()
    span = max(PORT_OFFSETS.values()) + 1
    ephemeral = ephemeral_ports()

    def ports(base: int) -> list[int]:
        return [*(base + i for i in range(span)), *(base + i + SEAWEED_GRPC_OFFSET for i in range(8)),
                base + PORT_OFFSETS["redis"] + REDIS_CLUSTER_BUS_OFFSET]

    bases = [b for b in range(10000, 60000, 100) if not any(p in ephemeral for p in ports(b))]
    for _ in range(200):
        base = rng.choice(bases)
        if taken is not None and base in (taken, taken - SEAWEED_GRPC_OFFSET, taken + SEAWEED_GRPC_OFFSET):
            continue
        if all(port_is_free(host, p) for p in ports(base)):
            return base
    raise RuntimeError("no free port range for a test stack")


def read_topic(s: Settings, topic: str, *, until: int | None = None, timeout_s: float = 10.0,
               match=lambda ev: True) -> list[ValidEvent]:
    """Every CloudEvent on a topic (from the start) that `match` accepts; a fresh consumer group."""
    cons = consumer(s, group_id=f"test-reader-{uuid.uuid4().hex}")
    cons.subscribe([topic])
    found: list[ValidEvent] = []
    deadline = time.monotonic() + timeout_s
    idle_since = None
    try:
        while time.monotonic() < deadline:
            msg = cons.poll(0.2)
            if msg is None or msg.error():
                # stop early once we have what we waited for and the topic went quiet
                if until is not None and len(found) >= until:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 1.0:
                        break
                continue
            idle_since = None
            try:
                ev = from_kafka(msg.headers(), msg.key(), msg.value())
            except EventError:  # other tests put raw records on shared topics
                continue
            if match(ev):
                found.append(ev)
    finally:
        cons.close()
    return found


class ThreadedServer:
    """Run an ASGI app with uvicorn on a free loopback port in a background thread."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def wait_for(cond, timeout_s: float = 30.0, interval_s: float = 0.1) -> bool:
    """Poll ``cond`` until it is truthy (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval_s)
    return False


# A model that trains in seconds on a 2-core CPU: enough to exercise every serving path.
QUICK_TRAIN = {
    "max_history": 8, "top_k": 50, "val_beam_width": 10, "test_beam_width": 10, "threads": 2,
    "embeddings": {"mode": "text"},
    "tokenizer": {"method": "rqkmeans", "levels": 2, "codebook_size": 8, "latent_dim": 16,
                  "disambiguation_size": 64, "kmeans_iters": 5},
    "model": {"d_model": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "d_ff": 64, "user_buckets": 7},
    "optim": {"epochs": 1, "batch_size": 64, "warmup_steps": 5},
}


def catalogue_and_model(s: Settings, seed: int, out_dir):
    """A small synthetic catalogue in PostgreSQL and a model trained on it in production:
    ``(dataset, promoted ServingArtifact)``."""
    from genrec.data import SynthConfig, generate_synthetic
    from genrec.pipelines.seed import dataset_items
    from genrec.stores.catalog_repo import CatalogRepo
    from genrec.stores.postgres import make_pool

    ds = generate_synthetic(SynthConfig(n_items=60, n_users=80, seed=seed))
    pool = make_pool(s)
    try:
        CatalogRepo(pool).upsert_many(dataset_items(ds))
    finally:
        pool.close()
    return ds, train_and_promote(s, ds, out_dir)


def train_and_promote(s: Settings, ds, out_dir):
    """Train ``QUICK_TRAIN`` on ``ds``, promote it on the stack and wait until the model
    server answers with it. Returns the promoted ``ServingArtifact``."""
    from genrec.serving.artifact import set_current
    from genrec.serving.client import ModelClient
    from genrec.stores.hot_state import redis_client
    from genrec.training import TrainConfig, train_generative
    from tests.serving.conftest import wait_ready

    train_generative(ds, TrainConfig.model_validate(QUICK_TRAIN), out_dir=out_dir, progress=False,
                     evaluate_test=False)
    art = set_current(out_dir, s, redis_client(s))
    wait_ready(ModelClient(s), art.version)
    return art
