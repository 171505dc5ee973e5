"""Knative function `feature-update`: interaction events → Redis hot state, popularity, PostgreSQL.

Thin by design: the behaviour lives in genrec.apps.feature_update.
"""

from genrec.apps.feature_update import create_app
from genrec.apps.knative import AsgiFunction


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
