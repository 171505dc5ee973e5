"""What the recommend endpoints depend on, as typed FastAPI dependencies.

``create_app`` keeps one ``RecommendState`` on ``app.state``: the recommend service and the two
event publishers, each built on first use (or at start-up), and the served-list log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from genrec.apps.recommend.served import ServedLog
from genrec.config import Settings
from genrec.events.publisher import EventPublisher
from genrec.recommend.service import ModelBackend, RecommendService
from genrec.stores.resources import Lazy, Resources


def default_model_backend(s: Settings) -> ModelBackend | None:
    """The model-server client, when the serving package is installed."""
    try:
        from genrec.recommend.model_backend import TritonModelBackend
    except ImportError:
        return None
    return TritonModelBackend(s)


class RecommendState:
    def __init__(self, s: Settings, model: ModelBackend | None, metrics: CollectorRegistry) -> None:
        self.settings = s
        self.res = res = Resources(s)
        self.service = Lazy(lambda: RecommendService(s, res, model if model is not None else default_model_backend(s)))
        # Feedback is acknowledged before answering; served lists are fire-and-forget logs, batched
        # (linger) so the broker's produce rate, and its storage writes, do not follow the request rate.
        self.feedback = Lazy(lambda: EventPublisher(s, timeout_s=s.kafka.publish_timeout_s, linger_ms=None),
                             close=EventPublisher.close)
        served_events = Lazy(lambda: EventPublisher(s, timeout_s=s.kafka.publish_timeout_s,
                                                    linger_ms=s.kafka.served_log_linger_ms),
                             close=EventPublisher.close)
        self.served = ServedLog(served_events, metrics)

    def start(self) -> None:
        self.service.get()
        self.feedback.get()
        self.served.publisher.get()

    def stop(self) -> None:
        self.feedback.close()
        self.served.publisher.close()
        self.res.close()


def state(request: Request) -> RecommendState:
    return request.app.state.recommend


async def _service(request: Request) -> RecommendService:
    return await state(request).service.aget()


async def _feedback(request: Request) -> EventPublisher:
    return await state(request).feedback.aget()


async def _served(request: Request) -> ServedLog:
    return state(request).served


Service = Annotated[RecommendService, Depends(_service)]
FeedbackPublisher = Annotated[EventPublisher, Depends(_feedback)]
Served = Annotated[ServedLog, Depends(_served)]
