"""Knative function `cold-start-embedding`: new items/users → embeddings, Semantic IDs, code feed.

Thin by design: the behaviour lives in genrec.apps.cold_start.
"""

from genrec.apps.cold_start import create_app
from genrec.apps.knative import AsgiFunction


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
