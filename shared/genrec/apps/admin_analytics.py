"""Where the admin API reads serving analytics from, and the live metrics it streams.

Locally chDB is in-process and owned by the analytics-sink service, so the admin API asks
that service over HTTP; with a ClickHouse server (``settings.clickhouse.url``) it queries
the store directly. Both readers return the same plain rows.

Live metrics: requests/s and p50/p95/p99 come from the recommend service's Prometheus
histogram (rates between scrapes, like PromQL ``rate`` + ``histogram_quantile``); the
fallback share (requests not answered by the model or its cache) comes from the analytics
store. Until two scrapes exist, or when the recommend service is down, the analytics store
over the last few minutes stands in.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from genrec.apps.errors import ApiError
from genrec.apps.outages import api_error, classify
from genrec.config import Settings
from genrec.stores.resources import Lazy

if TYPE_CHECKING:
    from genrec.stores.analytics import AnalyticsStore

Row = dict[str, Any]
FALLBACK_PATHS = frozenset({"vector", "popularity"})  # served without the generative model
LIVE_WINDOW_S = 60.0  # rates are computed over (at most) this much history
ANALYTICS_WINDOW_H = 5 / 60  # the stand-in window when no Prometheus rate exists yet


class AnalyticsReader(Protocol):
    def latency(self, hours: float, algorithm_version: str = "") -> list[Row]: ...
    def ctr(self, hours: float, window_s: int = 1800) -> list[Row]: ...
    def coverage(self, hours: float, catalog_size: int) -> list[Row]: ...
    def versions(self, hours: float, catalog_size: int | None = None) -> list[Row]: ...
    def ab(self, hours: float, by_hour: bool = False) -> list[Row]: ...


class SinkAnalyticsReader:
    """Asks the analytics-sink service (the owner of the local chDB store)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s)

    def _get(self, path: str, params: dict[str, Any]) -> list[Row]:
        try:
            resp = self.client.get(f"/api/v1/analytics/{path}", params={k: v for k, v in params.items()
                                                                        if v is not None})
        except httpx.HTTPError as exc:
            raise ApiError(503, "", f"analytics store unavailable: {exc}", "unavailable") from None
        if resp.status_code != 200:
            raise ApiError(503, "", f"analytics store answered {resp.status_code}: {resp.text[:200]}",
                           "unavailable")
        return resp.json()

    def latency(self, hours: float, algorithm_version: str = "") -> list[Row]:
        return self._get("latency", {"hours": hours, "algorithm_version": algorithm_version})

    def ctr(self, hours: float, window_s: int = 1800) -> list[Row]:
        return self._get("ctr", {"hours": hours, "window_s": window_s})

    def coverage(self, hours: float, catalog_size: int) -> list[Row]:
        return self._get("coverage", {"hours": hours, "catalog_size": catalog_size})

    def versions(self, hours: float, catalog_size: int | None = None) -> list[Row]:
        return self._get("versions", {"hours": hours, "catalog_size": catalog_size})

    def ab(self, hours: float, by_hour: bool = False) -> list[Row]:
        return self._get("ab", {"hours": hours, "by_hour": by_hour})

    def close(self) -> None:
        self.client.close()


class StoreAnalyticsReader:
    """Queries a ClickHouse server directly through AnalyticsStore."""

    def __init__(self, s: Settings) -> None:
        # Connected on the first query: a ClickHouse that is down while the admin API starts costs
        # the analytics views 503s (then recovers), not the start.
        self._store = Lazy(lambda: _open_store(s), close=lambda store: store.close())

    @property
    def store(self) -> AnalyticsStore:
        return self._store.get()

    @staticmethod
    def _window(hours: float) -> tuple[datetime, datetime]:
        until = datetime.now(UTC) + timedelta(minutes=1)  # same window as the sink's endpoints
        return until - timedelta(hours=hours), until

    def _ask(self, query: Callable[[AnalyticsStore], list]) -> list[Row]:
        """The query's rows; a ClickHouse outage is a 503 naming it (genrec.apps.outages)."""
        try:
            return [asdict(r) for r in query(self.store)]
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            raise api_error(fault) from None

    def latency(self, hours: float, algorithm_version: str = "") -> list[Row]:
        return self._ask(lambda st: st.latency_by_hour(*self._window(hours), algorithm_version=algorithm_version))

    def ctr(self, hours: float, window_s: int = 1800) -> list[Row]:
        return self._ask(lambda st: st.click_through(*self._window(hours), window_s=window_s))

    def coverage(self, hours: float, catalog_size: int) -> list[Row]:
        return self._ask(lambda st: st.coverage(*self._window(hours), catalog_size))

    def versions(self, hours: float, catalog_size: int | None = None) -> list[Row]:
        return self._ask(lambda st: st.compare_versions(*self._window(hours), catalog_size=catalog_size))

    def ab(self, hours: float, by_hour: bool = False) -> list[Row]:
        return self._ask(lambda st: st.ab_arms(*self._window(hours), by_hour=by_hour))

    def close(self) -> None:
        self._store.close()


def _open_store(s: Settings) -> AnalyticsStore:
    from genrec.stores.analytics import AnalyticsStore

    return AnalyticsStore(s, create_schema=False)


def make_reader(s: Settings) -> AnalyticsReader:
    if s.clickhouse.url is not None:
        return StoreAnalyticsReader(s)
    return SinkAnalyticsReader(s.function_url("analytics_sink"))


# -- Prometheus ----------------------------------------------------------------------------------
def served_route(route: str) -> bool:
    """Routes of the recommend service that serve a recommendation list (feedback does not)."""
    return route.startswith("/api/v1/recommend") and not route.endswith("/feedback")


def parse_histogram(text: str, metric: str = "http_request_duration_seconds") -> tuple[float, dict[float, float]]:
    """(total count, cumulative count per upper bound) summed over the serving routes."""
    buckets: dict[float, float] = {}
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if not served_route(sample.labels.get("route", "")):
                continue
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                total += sample.value
    return total, buckets


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' estimate: linear interpolation inside the bucket holding rank q * count."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        count = buckets[b]
        if count >= rank:
            if math.isinf(b):  # the +Inf bucket has no width: report the highest finite bound
                return prev_bound
            if count == prev_count:
                return b
            return prev_bound + (b - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = b, count
    return prev_bound


class LiveMetrics:
    """Snapshots for the dashboard; shared by every stream so the scrape rate stays bounded."""

    def __init__(self, s: Settings, reader: AnalyticsReader, *, min_interval_s: float = 0.9) -> None:
        self.metrics_url = s.function_url("recommend") + "/metrics"
        self.reader = reader
        self.min_interval_s = min_interval_s
        self._samples: deque[tuple[float, float, dict[float, float]]] = deque()
        self._last: tuple[float, Row] | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=2.0)

    def _scrape(self, now: float) -> bool:
        try:
            resp = self._http.get(self.metrics_url)
            resp.raise_for_status()
        except httpx.HTTPError:
            self._samples.clear()  # a restarted service resets its counters: start over
            return False
        total, buckets = parse_histogram(resp.text)
        if self._samples and total < self._samples[-1][1]:
            self._samples.clear()
        self._samples.append((now, total, buckets))
        while len(self._samples) > 2 and now - self._samples[0][0] > LIVE_WINDOW_S:
            self._samples.popleft()
        return True

    def _prometheus_rates(self) -> Row | None:
        if len(self._samples) < 2:
            return None
        (t0, n0, b0), (t1, n1, b1) = self._samples[0], self._samples[-1]
        delta = {le: c - b0.get(le, 0.0) for le, c in b1.items()}
        ms = {f"p{int(q * 100)}_ms": (None if (v := histogram_quantile(q, delta)) is None else v * 1000)
              for q in (0.5, 0.95, 0.99)}
        return {"requests_per_s": (n1 - n0) / max(t1 - t0, 1e-6), **ms, "window_s": round(t1 - t0, 2)}

    def _analytics(self) -> tuple[Row, dict[str, int]]:
        rows = self.reader.versions(ANALYTICS_WINDOW_H)
        served: dict[str, int] = {}
        n = sum(r["requests"] for r in rows)
        for r in rows:
            for path, k in r.get("served_by", {}).items():
                served[path] = served.get(path, 0) + int(k)
        # Request-weighted mean of per-version quantiles: exact with one version, an estimate otherwise.
        est = {key: (sum(r[key] * r["requests"] for r in rows) / n if n else None)
               for key in ("p50_ms", "p95_ms", "p99_ms")}
        return {"requests_per_s": n / (ANALYTICS_WINDOW_H * 3600), **est,
                "window_s": ANALYTICS_WINDOW_H * 3600}, served

    def snapshot(self) -> Row:
        with self._lock:
            now = time.monotonic()
            if self._last and now - self._last[0] < self.min_interval_s:
                return self._last[1]
            scraped = self._scrape(now)
            rates = self._prometheus_rates()
            try:
                fallback_rates, served = self._analytics()
                analytics_ok = True
            except ApiError:
                fallback_rates, served, analytics_ok = {}, {}, False
            total = sum(served.values())
            snap: Row = {
                "ts": datetime.now(UTC).isoformat(),
                "source": "prometheus" if rates else ("analytics" if analytics_ok else "none"),
                **(rates or fallback_rates or {"requests_per_s": None, "p50_ms": None, "p95_ms": None,
                                              "p99_ms": None, "window_s": None}),
                "fallback_share": (sum(v for k, v in served.items() if k in FALLBACK_PATHS) / total) if total else None,
                "served_by": served,
                "recommend_up": scraped,
                "analytics_up": analytics_ok,
            }
            self._last = (now, snap)
            return snap

    def close(self) -> None:
        self._http.close()
