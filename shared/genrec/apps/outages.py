"""Which dependency an exception says is down right now, and which say a record is bad.

The one place that reads the drivers' exceptions. ``classify(exc)`` answers a ``Fault``:

- ``Fault(dependency, OUTAGE)``: PostgreSQL, Redis, Milvus, ClickHouse, S3, the model server,
  the LLM provider or Kafka cannot serve *now* (refused or dropped connections, timeouts, a
  server shutting down or still loading, overload and throttling, a full or unwritable disk).
  Apps answer 503 naming the dependency, so deliveries are retried until it is back;
- ``Fault(dependency, BAD_DATA)``: the dependency answered and refused *this* record (a value
  its column cannot hold, a Milvus "invalid argument", a constraint violation). Retrying can
  never succeed: event functions answer 422 and the record is dead-lettered at once;
- ``None``: anything else (a bad query, a missing table, a bug). Apps let it become a 500,
  which the delivery policy retries for its whole window before dead-lettering: a bug is
  fixed and the dead letters replayed, an outage is never dead-lettered for being unexpected.

The driver's own text names hosts, ports and user names: it goes to the log, never to clients
(``Fault.message``). Drivers are recognised by the package their exception comes from and
imported only then (already loaded, since it raised), so an app pays for none it does not use.
An exception whose cause (``raise ... from``) is a fault is that fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from types import TracebackType

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.apps.errors import ApiError

log = logging.getLogger("genrec.outages")


class Kind(Enum):
    OUTAGE = "outage"
    BAD_DATA = "bad_data"


OUTAGE, BAD_DATA = Kind.OUTAGE, Kind.BAD_DATA
POSTGRES, REDIS, MILVUS, CLICKHOUSE = "PostgreSQL", "Redis", "Milvus", "ClickHouse"
S3, MODEL_SERVER, LLM, KAFKA = "S3", "the model server", "the LLM provider", "Kafka"


@dataclass(frozen=True)
class Fault:
    dependency: str  # a name for clients: "PostgreSQL", "the LLM provider"
    kind: Kind

    @property
    def message(self) -> str:
        if self.kind is OUTAGE:
            return f"{self.dependency} is unavailable; try again shortly"
        return f"{self.dependency} refused this record as invalid"


def _postgres(exc: BaseException) -> Kind | None:
    import psycopg

    # OperationalError: connection lost or refused, admin shutdown, too many connections, disk
    # full, and psycopg_pool's PoolTimeout. TransactionRollback: a deadlock or serialization
    # failure, which the same statement survives when retried.
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.TransactionRollback):
        return OUTAGE
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):  # a value or constraint this row breaks
        return BAD_DATA
    return None


def _redis(exc: BaseException) -> Kind | None:
    from redis import exceptions as r

    # BusyLoadingError is a ConnectionError; ClusterDownError (and MasterDownError) a ClusterError;
    # ReadOnlyError: a replica during failover; TryAgain: a slot being migrated.
    if isinstance(exc, r.ConnectionError | r.TimeoutError | r.ClusterError | r.TryAgainError | r.ReadOnlyError):
        return OUTAGE
    return None


# gRPC codes that mean the server cannot answer now (Milvus is the one gRPC server handlers call
# directly; the model client turns its own into ModelUnavailable).
_GRPC_OUTAGE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED"}


def _grpc(exc: BaseException) -> Kind | None:
    code = getattr(exc, "code", None)
    name = getattr(code() if callable(code) else None, "name", None)
    if name in _GRPC_OUTAGE:
        return OUTAGE
    return BAD_DATA if name == "INVALID_ARGUMENT" else None


# Milvus's own error codes for a request it refuses (merr: parameter invalid, missing, too large).
_MILVUS_BAD_REQUEST = {1100, 1101, 1102}


def _milvus(exc: BaseException) -> Kind | None:
    from pymilvus import exceptions as m
    from pymilvus.client.types import Status

    if isinstance(exc, m.ConnectError | m.MilvusUnavailableException | m.ConnectionNotExistException):
        return OUTAGE
    if not isinstance(exc, m.MilvusException):
        return None
    # pymilvus' retry loop ends with a MilvusException carrying the last gRPC code, or Milvus's
    # rate-limit (8) / write-quota (9: disk or memory quota reached) codes; its reconnect after a
    # dropped channel ends with the client's own CONNECT_FAILED (2).
    code = getattr(exc.code, "name", exc.code)
    if (code in _GRPC_OUTAGE or code in (m.ErrorCode.RATE_LIMIT, m.ErrorCode.FORCE_DENY, Status.CONNECT_FAILED)
            or exc.retriable):
        return OUTAGE
    if (exc.is_input_error or code in _MILVUS_BAD_REQUEST
            or isinstance(exc, m.ParamError | m.DataTypeNotMatchException | m.DataNotMatchException
                          | m.PrimaryKeyException | m.FieldTypeException | m.FieldsTypeException)):
        return BAD_DATA
    return None


# ClickHouse error codes (src/Common/ErrorCodes.cpp) that mean "not now": timeouts, network,
# too much load, memory, a read-only table (Keeper away), no disk space, Keeper errors, a shutdown.
_CLICKHOUSE_OUTAGE = {74, 75, 76, 159, 202, 209, 210, 236, 241, 242, 243, 252, 225, 279, 319, 394,
                      425, 439, 999, 1000}
# ... and those that mean "this value does not fit": parse failures, type mismatches, out of range.
_CLICKHOUSE_BAD_DATA = {6, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 131, 321, 349, 407}


def _clickhouse(exc: BaseException) -> Kind | None:
    from clickhouse_connect.driver import exceptions as ch

    if isinstance(exc, ch.OperationalError):  # no connection, a dropped stream, a network error
        return OUTAGE
    if isinstance(exc, ch.DataError):
        return BAD_DATA
    code = getattr(exc, "code", None)
    if code in _CLICKHOUSE_OUTAGE:
        return OUTAGE
    if code in _CLICKHOUSE_BAD_DATA:
        return BAD_DATA
    # chDB (ClickHouse in-process) reports a disk it cannot write as a std::filesystem error.
    if code == 1001 and "filesystem error" in str(exc):
        return OUTAGE
    return None


_S3_RETRYABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                       "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}


def _s3(exc: BaseException) -> Kind | None:
    from botocore import exceptions as b

    if isinstance(exc, b.ConnectionError | b.HTTPClientError):  # refused, timed out, dropped mid-stream
        return OUTAGE
    if isinstance(exc, b.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = exc.response.get("Error", {}).get("Code", "")
        if status >= 500 or status == 429 or code in _S3_RETRYABLE_CODES:
            return OUTAGE
    return None


def _s3transfer(exc: BaseException) -> Kind | None:
    from s3transfer.exceptions import RetriesExceededError

    return OUTAGE if isinstance(exc, RetriesExceededError) else None  # downloads that kept failing


def _openai(exc: BaseException) -> Kind | None:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.RateLimitError):  # APITimeoutError included
        return OUTAGE
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return OUTAGE
    return None


def _kafka(exc: BaseException) -> Kind | None:
    from confluent_kafka import KafkaError, KafkaException

    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(error, KafkaError) and (error.retriable() or error.code() in (
            KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT)):
        return OUTAGE
    return None


def _ours(exc: BaseException) -> Fault | None:
    """genrec's clients' own "unavailable" exceptions (they hold the driver's detail)."""
    module = type(exc).__module__
    if module == "genrec.events.publisher":
        from genrec.events.publisher import BrokerUnavailable

        return Fault(KAFKA, OUTAGE) if isinstance(exc, BrokerUnavailable) else None
    if module == "genrec.serving.client":
        from genrec.serving.client import ModelUnavailable

        return Fault(MODEL_SERVER, OUTAGE) if isinstance(exc, ModelUnavailable) else None
    if module == "genrec.recommend.guard":
        from genrec.recommend.guard import StoreUnavailable

        return Fault(exc.store, OUTAGE) if isinstance(exc, StoreUnavailable) else None
    if module == "genrec.enrichment.client":
        from genrec.enrichment.client import LLMUnavailable

        return Fault(LLM, OUTAGE) if isinstance(exc, LLMUnavailable) else None
    return None


# Top-level package of an exception's class -> (the dependency it speaks for, its rule).
RULES: dict[str, tuple[str, Callable[[BaseException], Kind | None]]] = {
    "psycopg": (POSTGRES, _postgres), "psycopg_pool": (POSTGRES, _postgres),
    "redis": (REDIS, _redis),
    "pymilvus": (MILVUS, _milvus), "grpc": (MILVUS, _grpc),
    "clickhouse_connect": (CLICKHOUSE, _clickhouse),
    "botocore": (S3, _s3), "s3transfer": (S3, _s3transfer),
    "openai": (LLM, _openai),
    "confluent_kafka": (KAFKA, _kafka), "cimpl": (KAFKA, _kafka),  # confluent-kafka's C module
}
# The libraries whose frames tell who raised a builtin ConnectionError or TimeoutError.
_RAISED_IN = {**{pkg: dep for pkg, (dep, _rule) in RULES.items()}, "chdb": CLICKHOUSE, "boto3": S3,
              "tritonclient": MODEL_SERVER, "genrec.stores.milvus": MILVUS}


def classify(exc: BaseException) -> Fault | None:
    """The dependency fault ``exc`` (or an exception it was raised from) reports, else None."""
    for err in _causes(exc):
        fault = _ours(err) or _driver(err) or _builtin(err)
        if fault is not None:
            return fault
    return None


def _driver(exc: BaseException) -> Fault | None:
    rule = RULES.get(type(exc).__module__.partition(".")[0])
    if rule is None:
        return None
    dependency, judge = rule
    kind = judge(exc)
    return Fault(dependency, kind) if kind is not None else None


def _builtin(exc: BaseException) -> Fault | None:
    """A socket-level ConnectionError or TimeoutError, named by the library it was raised in."""
    if not isinstance(exc, ConnectionError | TimeoutError):
        return None
    return Fault(_raised_in(exc.__traceback__) or "a dependency", OUTAGE)


def _raised_in(tb: TracebackType | None) -> str | None:
    """The dependency of the innermost frame that belongs to a known client library."""
    found = None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, dependency in _RAISED_IN.items():
            if name == prefix or name.startswith(prefix + "."):
                found = dependency
        tb = tb.tb_next
    return found


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def api_error(fault: Fault, field: str = "") -> ApiError:
    """503 (retry later) for an outage, 422 (never retry) for data the dependency refused."""
    if fault.kind is OUTAGE:
        return ApiError.unavailable(fault.message)
    return ApiError(422, field, fault.message, "invalid_data")


def answer_faults(app: FastAPI, *bases: type[BaseException]) -> None:
    """Answer exceptions of these classes that ``classify`` recognises (an app names the drivers'
    base classes it uses); the rest stay 500s."""
    for base in bases:
        app.add_exception_handler(base, _answer)


async def _answer(request: Request, exc: Exception) -> JSONResponse:
    fault = classify(exc)
    if fault is None:
        raise exc  # unexpected: the server's 500, with its traceback in the log
    log.warning("%s %s: %s: %s: %s", request.method, request.url.path, fault.message, type(exc).__name__, exc)
    return api_error(fault).response()
