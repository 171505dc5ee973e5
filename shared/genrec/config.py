"""One typed settings object for every endpoint and knob.

Precedence (highest first): explicit constructor arguments, ``GENREC_*`` environment
variables (nested with ``__``, e.g. ``GENREC_KAFKA__BOOTSTRAP_SERVERS``), a TOML file
(``genrec.toml`` in the working directory or the path in ``GENREC_CONFIG``), defaults.

Every default points at the embedded local stack started by ``genrec dev up``: endpoints
left unset are derived from ``stack.host`` and ``stack.port_base``, so one knob moves the
whole local stack (tests use it to run an isolated stack), while production sets URLs.

``environment`` (``GENREC_ENVIRONMENT``) is ``development`` unless set. In ``production``,
building Settings raises `SettingsRefused` while a development default secret (or a weak one)
is in effect, so every process that reads its settings refuses to start
(`production_problems` says why; `genrec config check` prints it).
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from genrec.workloads import WORKLOADS, Priority

# Offsets from stack.port_base for each embedded server. Kept in one table so that
# `genrec dev` and the derived URLs below can never disagree.
PORT_OFFSETS: dict[str, int] = {
    "s3": 0,
    "seaweed_master": 1,
    "seaweed_volume": 2,
    "seaweed_filer": 3,
    "seaweed_iceberg": 4,
    "seaweed_lance": 5,
    "seaweed_admin": 6,
    "kafka": 10,
    "kafka_retention": 11,
    "postgres": 20,
    "redis": 30,
    "milvus": 40,
    "model_server": 50,
    # the local eventing bridges, one per priority (bridge_port_key)
    "bridge": 61,
    "bridge_bulk": 62,
    **{w.key: w.port_offset for w in WORKLOADS},
}



def bridge_port_key(priority: Priority) -> str:
    """The port key of the local bridge that delivers one priority's subscriptions."""
    return "bridge" if priority == "realtime" else f"bridge_{priority}"


def bridge_name(priority: Priority) -> str:
    """That bridge's name as a dev-stack service (and in its logs): ``bridge``, ``bridge-bulk``."""
    return bridge_port_key(priority).replace("_", "-")


# The local stack's credentials: development values, which production refuses (`production_problems`).
DEV_ADMIN_TOKENS = {"admin": "dev-admin-token", "viewer": "dev-viewer-token"}
DEV_JWT_SECRET = "dev-jwt-secret-change-me"
DEV_S3_SECRET = "genrec-local-secret"
# Weak secrets production refuses too: an HS256 key shorter than the hash (RFC 7518 3.2), and
# bearer tokens or API keys short enough to guess.
MIN_JWT_SECRET_BYTES = 32
MIN_KEY_LENGTH = 16


# The design's sizes, stated once: recommendations per request, the history a model reads by
# default, and the longest history a request (and the serving contract) may carry.
TOP_K = 50
MAX_HISTORY = 20
MAX_SEQUENCE = 1024


class StackSettings(BaseModel):
    """Where the embedded local stack lives and listens."""

    host: str = "127.0.0.1"
    port_base: int = Field(default=17000, ge=1024, le=60000)
    state_dir: Path = Path(".genrec")
    start_timeout_s: float = 180.0  # generous: a loaded 2-core CI box starts a dozen processes
    # A command that native server binaries run under, e.g. "qemu-x86_64 -cpu max" to run them as a
    # CPU without AVX-512 would (the portability check); empty: run them directly.
    cpu_emulator: str = ""

    def port(self, name: str) -> int:
        return self.port_base + PORT_OFFSETS[name]

    def native(self, argv: list[str]) -> list[str]:
        """The command line that runs a native server binary: under cpu_emulator when one is set."""
        if not self.cpu_emulator:
            return argv
        emulator, *flags = shlex.split(self.cpu_emulator)
        path = shutil.which(emulator)
        if path is None:
            raise FileNotFoundError(f"stack.cpu_emulator: {emulator!r} is not installed (Debian: qemu-user)")
        return [path, *flags, *argv]


class TopicSettings(BaseModel):
    name: str
    partitions: int = Field(default=1, ge=1)
    replication: int = Field(default=1, ge=1)
    retention_days: int = Field(default=7, ge=1)


def _default_topics() -> dict[str, TopicSettings]:
    # One partition per topic locally: the bridge runs one consumer per subscription, and on
    # tansu each partition in a produce or fetch is its own object-store write or read (4
    # partitions cost SeaweedFS 58 ms of CPU per 1,000 records, 1 partition 14 ms). Production
    # values (the original design's 128 / 64) are set per stack in infra/pulumi and via
    # GENREC_KAFKA__TOPICS__*.
    return {
        "user_events": TopicSettings(name="user_events"),
        "item_events": TopicSettings(name="item_events"),
        "user_profile_events": TopicSettings(name="user_profile_events"),
        "item_enriched": TopicSettings(name="item_enriched"),
        "recommendation_logs": TopicSettings(name="recommendation_logs", retention_days=30),
    }


class KafkaSettings(BaseModel):
    bootstrap_servers: str | None = None
    topics: dict[str, TopicSettings] = Field(default_factory=_default_topics)
    dead_letter_suffix: str = ".dlq"
    publish_timeout_s: float = 5.0
    # recommend's recommendation.served batching: each produce is an object-store write on tansu,
    # and analytics reads the log a second later anyway.
    served_log_linger_ms: int = Field(default=1000, ge=0, le=5000)
    # event-capture waits this long to merge concurrent requests into one produce per
    # partition: every produce is a write to the broker's log store (S3 for tansu) and a read
    # per reading group. At 2 ms, eight requests 4 ms apart were seven writes; at 20 ms, at
    # 5,000 events/s offered in batches of 100 on 2 cores, the object store's CPU per event
    # fell by half and 27 % more events were accepted (README: the broker writes row); at 50 ms,
    # at 3,000 events/s, it fell by another third (0.08 → 0.05 ms; the broker 0.023 → 0.016).
    # Accepting waits up to this long more, far inside the 1 s click → next list target.
    ingest_linger_ms: int = Field(default=50, ge=0, le=1000)
    # Fast local group joins (tansu waits ~session.timeout/2 on join). tansu writes a group's
    # state to its object store on every heartbeat: at 500 ms the idle stack's five groups
    # cost it 14 writes/s, at 2 s 3.5.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    # How long the broker may hold a fetch. A real Kafka answers as soon as data arrives; tansu
    # rereads its S3 log in a sleep loop until the wait is up, and with short waits answers a
    # backlog a stored batch at a time: measured here, 100 ms drains ~80 records/s, 500 ms
    # ~4,000/s, for ~100 ms more delivery delay when idle (p50 80 → 180 ms).
    fetch_wait_max_ms: int = 500
    # The embedded broker keeps a record batch every reading group has committed at least this
    # long (genrec.devstack.retention); a Kafka cluster follows its topics' retention instead.
    # Short, because every fetch lists a partition's stored batches: at 1,000 events/s, 120 s kept
    # ~1,300 batches and the object store at 31 % of a core; 10 s (trimmed every 2 s) ~100 and 21 %.
    embedded_retention_s: float = Field(default=10.0, ge=0)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    def topic(self, key: str) -> str:
        return self.topics[key].name

    def dead_letter_topic(self, key: str) -> str:
        return self.topics[key].name + self.dead_letter_suffix


class PostgresSettings(BaseModel):
    dsn: SecretStr | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10
    embedding_dim: int = 384
    # How long the recommend API reuses an item row it read (title, status, Semantic IDs): a catalogue
    # change reaches served lists within this time. Every list needs ~70 rows; reading them from
    # PostgreSQL each time was a tenth of a request's CPU. 0: every row from PostgreSQL, every time.
    item_rows_max_age_s: float = Field(default=5.0, ge=0, le=3600)
    # A server on this machine runs a process per connection: the nice value this process gives
    # the backends it connects to, so a bulk consumer's writes run at its priority, not at the
    # server's (the dev stack sets each workload's own). A remote server's backends are not ours
    # to touch: production states priority with its pods' resources (infra/pulumi).
    backend_niceness: int = Field(default=0, ge=0, le=19)
    # Server settings for the event write load, given to the embedded server and rendered into the
    # cluster's (infra/pulumi). Each event touched three random B-tree pages (user_event_ids, the
    # user_events key, its (user, ts) index; two since migration 7), and after a checkpoint the
    # first change to a page logs the whole 8 kB page. With the defaults (max_wal_size 1GB, 5min) a
    # 4-million-event table took ~12 kB of WAL per event and a checkpoint every ~45 s at 1,000 events/s.
    server_parameters: dict[str, str] = Field(default_factory=lambda: {
        "max_wal_size": "4GB", "checkpoint_timeout": "15min", "checkpoint_completion_target": "0.9"})


class RedisSettings(BaseModel):
    url: SecretStr | None = None
    cluster: bool = False
    recent_sequence_cap: int = 1024
    recommendation_ttl_s: int = 300
    popularity_half_life_s: float = 6 * 3600.0
    # How long a resend (event-capture's ``ce:seen``) or a redelivery (feature-update's claims) is
    # recognised: upstream retries and the delivery policy's window (genrec.events.delivery) are
    # minutes, so a day is ample. Each event holds two keys (~120 B each) that long: at 1,000
    # events/s a day is ~170 M keys (~20 GB), a week was seven times that, and Redis rewrites its
    # append-only file in proportion. A consumer down longer than this may apply the batch it
    # had in flight twice (its claims expired).
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=3600)
    # How long a Redis call on a request's path (recommend's reads) may wait: a stalled Redis
    # then costs a request this much per call until the breaker opens, not the client's seconds.
    request_timeout_s: float = Field(default=0.5, gt=0, le=10)


class MilvusSettings(BaseModel):
    uri: str | None = None
    token: SecretStr | None = None
    collection: str = "item_embeddings"


class ClickHouseSettings(BaseModel):
    # A clickhouse-connect URL (http://user:pass@host:8123/db) for a real server;
    # when unset, chDB stores data in-process under chdb_path.
    url: SecretStr | None = None
    chdb_path: Path | None = None
    database: str = "genrec"
    log_ttl_days: int = 90
    # The server's cluster (remote_servers name) to spread the analytics tables over: replicated
    # per-shard tables behind Distributed ones, created ON CLUSTER (needs Keeper). None: one node,
    # plain tables (chDB, a single server).
    cluster: str | None = None


class S3Settings(BaseModel):
    endpoint_url: str | None = None
    bucket: str = "genrec"
    kafka_bucket: str = "genrec-kafka"
    # The embedded broker's cluster id: its log lives under clusters/<id>/ in kafka_bucket.
    kafka_cluster: str = "genrec"
    region: str = "us-east-1"
    access_key_id: str = "genrec"
    secret_access_key: SecretStr = SecretStr(DEV_S3_SECRET)
    multipart_threshold_mb: int = 16


class ModelServerSettings(BaseModel):
    url: str | None = None
    protocol: Literal["http", "grpc"] = "http"
    model_name: str = "genrec"
    # The local Triton's dynamic batcher (the contract's default); off only to measure it.
    dynamic_batching: bool = True
    # torch threads of each model instance, local and production (0: the runtime's default, one
    # per core the node has, whatever the pod requested). One: a second intra-op thread mostly
    # spins (1.6-1.8x the CPU per request for no throughput, bench/results/load-rec8-s35-*).
    threads: int = Field(default=1, ge=0)
    # Where the production model server's instances run (the Triton repository's instance_group),
    # and how many per replica: on CPU one per core the pod requests (the deployment sets it),
    # each holding its own copy of the model.
    instance_kind: Literal["cpu", "gpu"] = "cpu"
    instances: int = Field(default=1, ge=1)
    timeout_s: float = 0.5
    breaker_failures: int = 3
    breaker_reset_s: float = 5.0


class FunctionSettings(BaseModel):
    # Base URL of each function or HTTP service by its name (e.g. "recommend"), for callers such
    # as the admin API. Production sets every one (the Knative Services' cluster-local
    # addresses); a name left out is the local stack's address (`genrec dev up`).
    urls: dict[str, str] = Field(default_factory=dict)
    # How many text batches cold-start-embedding encodes at once, each on one torch thread (a delivered
    # batch's texts: the local bridge's batches, an upstream replay). None: one per CPU the process may run
    # on (the dev stack). Production sets its pods' requested cores, which a process cannot see.
    cold_start_workers: int | None = Field(default=None, ge=1)


class LLMSettings(BaseModel):
    # Any OpenAI-compatible endpoint; unset means "no LLM": enrichment passes items through.
    base_url: str | None = None
    api_key: SecretStr | None = None
    quality_model: str = "gpt-4o"
    cheap_model: str = "gpt-4o-mini"
    timeout_s: float = 20.0
    max_retries: int = 2
    daily_budget_requests: int = 10_000
    # Questions in flight at once for a delivered batch of items (llm-enrichment): one at a time, a
    # catalogue of 10,000 items takes hours at a few seconds an answer. The provider's rate limit bounds it.
    concurrency: int = Field(default=8, ge=1, le=64)


class ModelSettings(BaseModel):
    artifacts_dir: Path = Path("artifacts")
    max_history: int = Field(default=MAX_HISTORY, ge=1, le=MAX_SEQUENCE)
    top_k: int = Field(default=TOP_K, ge=1, le=TOP_K)
    device: str = "auto"


# How far a context rule or the page's category moves an item up a list: the log of the factor by which
# its rank shrinks (ln 4: an item at rank 20 competes as if at rank 5). genrec.recommend.context.
DEFAULT_CONTEXT_WEIGHT = 1.3862943611198906  # ln 4


class ContextRule(BaseModel):
    """When the request's context matches ``when``, items matching ``category`` / ``attributes`` move
    up the list by ``weight`` (negative: down)."""

    model_config = ConfigDict(extra="forbid")
    # context field -> value it must equal (case-insensitive); "hour": an inclusive range "18-23"
    # (wrapping past midnight: "22-5"); empty: every request
    when: dict[str, str] = Field(default_factory=dict, max_length=8)
    category: str | None = Field(default=None, max_length=512)  # items under this category path
    attributes: dict[str, str] = Field(default_factory=dict, max_length=8)  # items whose attribute equals
    weight: float = Field(default=DEFAULT_CONTEXT_WEIGHT, ge=-10, le=10)


class RecommendSettings(BaseModel):
    # Items under the category the page is about (context `page_category`) move up by this weight (0: off).
    page_category_weight: float = Field(default=DEFAULT_CONTEXT_WEIGHT, ge=0, le=10)
    context_rules: list[ContextRule] = Field(default_factory=list, max_length=100)


class AuthSettings(BaseModel):
    # Bearer tokens: name -> secret. The defaults are development values (refused in production).
    admin_tokens: dict[str, SecretStr] = Field(
        default_factory=lambda: {name: SecretStr(token) for name, token in DEV_ADMIN_TOKENS.items()}
    )
    # Admin API role per token name ("viewer" reads, "operator" also changes); unlisted names are viewers.
    # HS256 JWTs signed with jwt_secret carry their own "role" claim.
    admin_roles: dict[str, Literal["viewer", "operator"]] = Field(default_factory=lambda: {"admin": "operator"})
    ingest_api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    # A JWT must carry `exp`, at most this far after its `iat` (or after now, without `iat`).
    jwt_max_lifetime_s: int = Field(default=12 * 3600, ge=60)
    # Per client and per replica on the public endpoints (recommend, event capture, admin API): a client
    # presenting a credential that verifies (ingest key, admin token, JWT subject) gets rate_limit_per_s; anyone
    # else (no credential or one that does not verify) is limited by address at anonymous_rate_limit_per_s
    # (as high by default: load benchmarks run from one address without credentials; lower it in production).
    rate_limit_per_s: float = Field(default=1000.0, gt=0)
    anonymous_rate_limit_per_s: float = Field(default=1000.0, gt=0)
    # Proxies in front of the apps whose X-Forwarded-For entries are believed (0: the peer address is the
    # client's). With N, the client is the Nth address from the right, the one the outermost proxy saw.
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    # Browser origins allowed to call the APIs cross-origin (the admin app is same-origin).
    cors_origins: list[str] = Field(default_factory=list)


class ObservabilitySettings(BaseModel):
    log_format: Literal["json", "text"] = "json"  # json: one object per line, with service and request id
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4317; unset: trace ids propagate, no export
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)  # for traces that start here


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GENREC_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file="genrec.toml",
    )
    # False in subclasses that report on settings rather than run with them (`UncheckedSettings`).
    enforce_environment: ClassVar[bool] = True

    environment: Literal["development", "production"] = "development"
    stack: StackSettings = Field(default_factory=StackSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    model_server: ModelServerSettings = Field(default_factory=ModelServerSettings)
    functions: FunctionSettings = Field(default_factory=FunctionSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    recommend: RecommendSettings = Field(default_factory=RecommendSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("GENREC_CONFIG", "genrec.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Settings:
        if self.environment == "production" and type(self).enforce_environment:
            problems = production_problems(self)
            if problems:
                raise SettingsRefused(problems)
        return self

    @model_validator(mode="after")
    def _derive_local_endpoints(self) -> Settings:
        """Fill every unset endpoint with the embedded stack's address."""
        st = self.stack
        h = st.host
        if self.kafka.bootstrap_servers is None:
            self.kafka.bootstrap_servers = f"{h}:{st.port('kafka')}"
        if self.postgres.dsn is None:
            self.postgres.dsn = SecretStr(f"postgresql://postgres@{h}:{st.port('postgres')}/postgres")
        if self.redis.url is None:
            self.redis.url = SecretStr(f"redis://{h}:{st.port('redis')}/0")
        if self.milvus.uri is None:
            self.milvus.uri = f"http://{h}:{st.port('milvus')}"
        if self.clickhouse.url is None and self.clickhouse.chdb_path is None:
            self.clickhouse.chdb_path = st.state_dir / "data" / "chdb"
        if self.s3.endpoint_url is None:
            self.s3.endpoint_url = f"http://{h}:{st.port('s3')}"
        if self.model_server.url is None:
            self.model_server.url = f"{h}:{st.port('model_server')}"
        return self

    @property
    def embedded(self) -> bool:
        """True when the analytics store is the in-process chDB engine."""
        return self.clickhouse.url is None

    def function_url(self, name: str) -> str:
        """Base URL of a function or service (`event_capture` and `event-capture` alike): the
        configured one, else the address `genrec dev up` gives it."""
        configured = self.functions.urls.get(name.replace("_", "-"))
        if configured:
            return configured.rstrip("/")
        return f"http://{self.stack.host}:{self.stack.port(name.replace('-', '_'))}"

    def bridge_metrics_url(self, priority: Priority) -> str:
        """The local bridge's Prometheus endpoint for one priority (its delivery counts and lag)."""
        return f"http://{self.stack.host}:{self.stack.port(bridge_port_key(priority))}/metrics"

    def masked(self) -> dict[str, Any]:
        """The effective config as plain data with every secret masked."""
        return _mask(self.model_dump(mode="python"))


class UncheckedSettings(Settings):
    """Settings from the same sources, never refused: for tools that report on a configuration
    (`genrec config check`, `genrec deploy check`) instead of running with it."""

    enforce_environment: ClassVar[bool] = False


def env_var(*path: str) -> str:
    """The environment variable that sets a setting, e.g. ``GENREC_AUTH__JWT_SECRET`` for ("auth", "jwt_secret")."""
    config = Settings.model_config
    return config["env_prefix"] + config["env_nested_delimiter"].join(p.upper() for p in path)


@dataclass(frozen=True)
class SettingProblem:
    """Why production refuses a setting, named by the variable that sets it."""

    setting: str
    reason: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.reason}"


class SettingsRefused(Exception):
    """GENREC_ENVIRONMENT=production with development or weak secrets: the process must not start."""

    def __init__(self, problems: list[SettingProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{env_var('environment')}=production refuses these settings; set each to the "
                         f"deployment's own value:\n{lines}")


def production_problems(s: Settings) -> list[SettingProblem]:
    """What production refuses in `s`, whatever its environment (empty: production would start)."""
    auth = s.auth
    found: list[SettingProblem] = []
    dev_tokens = set(DEV_ADMIN_TOKENS.values())
    for name, token in auth.admin_tokens.items():
        if token.get_secret_value() in dev_tokens:
            found.append(SettingProblem(env_var("auth", "admin_tokens"), f"token {name!r} is a development default"))
        elif len(token.get_secret_value()) < MIN_KEY_LENGTH:
            found.append(SettingProblem(env_var("auth", "admin_tokens"),
                                        f"token {name!r} is shorter than {MIN_KEY_LENGTH} characters"))
    jwt = auth.jwt_secret.get_secret_value()
    if jwt == DEV_JWT_SECRET:
        found.append(SettingProblem(env_var("auth", "jwt_secret"), "the development default"))
    elif len(jwt.encode()) < MIN_JWT_SECRET_BYTES:
        found.append(SettingProblem(env_var("auth", "jwt_secret"), f"shorter than {MIN_JWT_SECRET_BYTES} bytes"))
    if not auth.ingest_api_keys:
        found.append(SettingProblem(env_var("auth", "ingest_api_keys"),
                                    "no key set, so event capture would accept events from anyone"))
    for name, key in auth.ingest_api_keys.items():
        if len(key.get_secret_value()) < MIN_KEY_LENGTH:
            found.append(SettingProblem(env_var("auth", "ingest_api_keys"),
                                        f"key {name!r} is shorter than {MIN_KEY_LENGTH} characters"))
    if s.s3.secret_access_key.get_secret_value() == DEV_S3_SECRET:
        found.append(SettingProblem(env_var("s3", "secret_access_key"), "the local stack's development key"))
    return found


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return _mask_secret(value.get_secret_value())
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _mask_secret(raw: str) -> str:
    # Keep URL shape readable (scheme, host) but hide credentials in DSNs.
    if "://" in raw and "@" in raw:
        scheme, rest = raw.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:****@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    if "://" in raw:
        return raw
    return "****" if raw else ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached). Call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
