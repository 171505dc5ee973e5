"""Service `analytics-sink`: interaction and served-recommendation events → ClickHouse; analytics queries.

Thin by design: the behaviour lives in genrec.apps.analytics_sink.
"""

from genrec.apps.analytics_sink import create_app
from genrec.apps.knative import AsgiFunction


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
