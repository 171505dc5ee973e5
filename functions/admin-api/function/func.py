"""Knative function `admin-api`: the admin API and the built admin app (frontend/dist).

Thin by design: the behaviour lives in genrec.apps.admin.
"""

from genrec.apps.admin import create_app
from genrec.apps.knative import AsgiFunction


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
