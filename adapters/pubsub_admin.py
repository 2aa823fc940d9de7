"""Topic and subscription housekeeping for ``connector check --create-missing``, ``make run`` and tests."""

from __future__ import annotations

from collections.abc import Iterable

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1


def missing_topics(project_id: str, topics: Iterable[str]) -> list[str]:
    client = pubsub_v1.PublisherClient()
    missing = []
    for topic in topics:
        try:
            client.get_topic(request={"topic": client.topic_path(project_id, topic)})
        except gexc.NotFound:
            missing.append(topic)
    return missing


def ensure_topics(project_id: str, topics: Iterable[str]) -> list[str]:
    """Create the topics that do not exist; returns the ones created."""
    client = pubsub_v1.PublisherClient()
    created = []
    for topic in topics:
        try:
            client.create_topic(request={"name": client.topic_path(project_id, topic)})
            created.append(topic)
        except gexc.AlreadyExists:
            pass
    return created


def ensure_subscription(project_id: str, topic: str, subscription: str, *, ordered: bool = True) -> str:
    """Create an (ordered) subscription on ``topic`` if missing; returns its path."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project_id, subscription)
    try:
        subscriber.create_subscription(
            request={
                "name": path,
                "topic": pubsub_v1.PublisherClient.topic_path(project_id, topic),
                "enable_message_ordering": ordered,
                "ack_deadline_seconds": 60,
            }
        )
    except gexc.AlreadyExists:
        pass
    finally:
        subscriber.close()
    return path
