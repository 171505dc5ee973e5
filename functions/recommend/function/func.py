"""Knative function `recommend`: the recommendation API (model server, fallbacks, feedback).

Thin by design: the behaviour lives in genrec.apps.recommend.
"""

from genrec.apps.knative import AsgiFunction
from genrec.apps.recommend import create_app


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
