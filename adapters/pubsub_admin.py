"""Topic and subscription housekeeping for ``connector check --create-missing``, ``make run`` and tests.

Every call has a deadline (``timeout_s``, config ``pubsub.admin_timeout_s``), retries included: the
client's defaults retry an unreachable server for a minute, and an operator waiting on ``check``
deserves one line naming the server and the fix well before that.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as api_retry
from google.cloud import pubsub_v1

DEFAULT_TIMEOUT_S = 10.0
T = TypeVar("T")


class PubSubAdminError(Exception):
    """Pub/Sub could not be reached or refused an admin call; the message names the server and the fix."""


def _deadline(timeout_s: float) -> dict[str, Any]:
    retry = api_retry.Retry(
        predicate=api_retry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError),
        initial=0.1,
        maximum=1.0,
        timeout=timeout_s,
    )
    return {"retry": retry, "timeout": timeout_s}


def _call(method: Callable[..., T], timeout_s: float, request: dict[str, Any]) -> T:
    """Run one admin call with the deadline; an outage or a refusal becomes :class:`PubSubAdminError`."""
    try:
        return method(request=request, **_deadline(timeout_s))
    except (gexc.NotFound, gexc.AlreadyExists):
        raise
    except gexc.GoogleAPIError as error:
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        if emulator:
            where = f"the Pub/Sub emulator at {emulator} (PUBSUB_EMULATOR_HOST)"
            fix = "start the emulator there, or unset PUBSUB_EMULATOR_HOST to use Pub/Sub"
        else:
            where = "Pub/Sub (pubsub.googleapis.com)"
            fix = "check network access, pubsub.project_id and that the credentials may manage topics (pubsub.editor)"
        cause = getattr(error, "cause", None) or error  # a RetryError wraps the last attempt's error
        what = (
            f"did not answer within {timeout_s:g} s (pubsub.admin_timeout_s)"
            if isinstance(error, gexc.RetryError | gexc.DeadlineExceeded | gexc.ServiceUnavailable)
            else "refused"
        )
        detail = " ".join(str(cause).split())[:200]
        raise PubSubAdminError(f"{where} {what}: {type(cause).__name__}: {detail}; {fix}") from error


def missing_topics(project_id: str, topics: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    client = pubsub_v1.PublisherClient()
    missing = []
    for topic in topics:
        path = client.topic_path(project_id, topic)
        try:
            _call(client.get_topic, timeout_s, {"topic": path})
        except gexc.NotFound:
            missing.append(topic)
    return missing


def ensure_topics(project_id: str, topics: Iterable[str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Create the topics that do not exist; returns the ones created."""
    client = pubsub_v1.PublisherClient()
    created = []
    for topic in topics:
        path = client.topic_path(project_id, topic)
        try:
            _call(client.create_topic, timeout_s, {"name": path})
            created.append(topic)
        except gexc.AlreadyExists:
            pass
    return created


def ensure_subscription(
    project_id: str, topic: str, subscription: str, *, ordered: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S
) -> str:
    """Create an (ordered) subscription on ``topic`` if missing; returns its path."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project_id, subscription)
    request = {
        "name": path,
        "topic": pubsub_v1.PublisherClient.topic_path(project_id, topic),
        "enable_message_ordering": ordered,
        "ack_deadline_seconds": 60,
    }
    try:
        _call(subscriber.create_subscription, timeout_s, request)
    except gexc.AlreadyExists:
        pass
    finally:
        subscriber.close()
    return path
