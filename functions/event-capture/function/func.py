"""Knative function `event-capture`: accepts upstream CloudEvents and publishes them to Kafka.

Thin by design: the behaviour lives in genrec.apps.event_capture.
"""

from genrec.apps.event_capture import create_app
from genrec.apps.knative import AsgiFunction


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
