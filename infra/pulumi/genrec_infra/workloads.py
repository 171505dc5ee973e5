"""genrec's workloads: which ones run, as what, and whether they are public. Declared once for
the Knative Services (functions.py) and the addresses callers get in the app config (appconfig.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Spec:
    name: str
    kind: Literal["function", "service"]
    target: str  # the function folder, or the ASGI factory `module:callable`
    public: bool = False  # False: cluster-local only (reached through KafkaSources or the mesh)

    @property
    def args(self) -> list[str]:
        return [self.kind, self.target]

    @property
    def health(self) -> tuple[str, str]:
        """(readiness, liveness) paths: func-python answers /health/*, genrec's HTTP apps /readyz, /healthz."""
        return ("/health/readiness", "/health/liveness") if self.kind == "function" else ("/readyz", "/healthz")


CATALOGUE: tuple[Spec, ...] = (
    Spec("event-capture", "function", "event-capture", public=True),  # upstream systems post here
    Spec("feature-update", "function", "feature-update"),
    Spec("cold-start-embedding", "function", "cold-start-embedding"),
    Spec("llm-enrichment", "function", "llm-enrichment"),
    Spec("recommend", "function", "recommend"),  # public through the Istio VirtualService (routing.py)
    Spec("admin-api", "service", "genrec.apps.admin:create_app", public=True),
    Spec("analytics-sink", "service", "genrec.apps.analytics_sink:create_app"),
)
