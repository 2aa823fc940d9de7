"""The Publisher port on google-cloud-pubsub: one client per process, batching, ordering, flow control.

The client already batches per topic and ordering key and retries transient RPC errors within its
own deadline; what it cannot do is keep going forever without reordering a key, which is the
application's ``ReliablePublisher``'s job. This adapter translates: futures become callbacks, the
client's exceptions become retryable or fatal ``PublishError``s with advice, and a publish to a
paused ordering key (which the client raises synchronously) becomes a failed callback.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions
from google.cloud.pubsub_v1.types import (
    BatchSettings,
    LimitExceededBehavior,
    PublisherOptions,
    PublishFlowControl,
)

from application.ports import PublishCallback, PublishError
from domain.envelope import MAX_MESSAGE_BYTES, OutboundMessage

_FATAL: dict[type[Exception], str] = {
    gexc.NotFound: "create the topic (connector check --create-missing) or fix streams[].topic",
    gexc.PermissionDenied: "grant the service account roles/pubsub.publisher on the topic",
    gexc.Unauthenticated: "provide credentials (GOOGLE_APPLICATION_CREDENTIALS or the Cloud Run service account)",
    gexc.InvalidArgument: "the message was refused as invalid; check its size and attributes",
    gexc.FailedPrecondition: "check the topic's configuration (e.g. a schema attached to it)",
}


def classify(error: BaseException) -> PublishError:
    """Turn a client exception into a ``PublishError`` that says whether retrying can help."""
    if isinstance(error, publisher_exceptions.PublishToPausedOrderingKeyException):
        return PublishError(f"ordering key paused: {error}", retryable=True)
    for kind, recovery in _FATAL.items():
        if isinstance(error, kind):
            return PublishError(f"{type(error).__name__}: {error}", retryable=False, recovery=recovery)
    return PublishError(f"{type(error).__name__}: {error}", retryable=True)


class PubSubPublisher:
    """Implements the Publisher port. ``max_in_flight`` bounds the client's own memory too."""

    def __init__(
        self,
        *,
        project_id: str,
        batch_max_latency_s: float = 0.05,
        batch_max_messages: int = 1000,
        batch_max_bytes: int = MAX_MESSAGE_BYTES,
        max_in_flight: int = 10_000,
        max_in_flight_bytes: int = 200 * 1024 * 1024,
        client: Any | None = None,
    ) -> None:
        self._project_id = project_id
        self._client = client or pubsub_v1.PublisherClient(
            batch_settings=BatchSettings(
                max_bytes=batch_max_bytes, max_latency=batch_max_latency_s, max_messages=batch_max_messages
            ),
            publisher_options=PublisherOptions(
                enable_message_ordering=True,
                flow_control=PublishFlowControl(
                    message_limit=max_in_flight,
                    byte_limit=max_in_flight_bytes,
                    limit_exceeded_behavior=LimitExceededBehavior.BLOCK,
                ),
            ),
        )
        self._paths: dict[str, str] = {}
        self._pending = 0
        self._count_lock = threading.Lock()  # tiny critical sections: callbacks must not queue behind publishes

    @property
    def client(self) -> Any:
        return self._client

    def topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = self._paths[topic] = self._client.topic_path(self._project_id, topic)
        return path

    def publish(self, message: OutboundMessage, on_done: PublishCallback) -> None:
        with self._count_lock:
            self._pending += 1
        try:
            future: Future[str] = self._client.publish(
                self.topic_path(message.topic),
                message.data,
                ordering_key=message.ordering_key,
                **message.attributes,
            )
        except Exception as error:  # the client raises some failures synchronously
            self._finished()
            on_done(classify(error))
            return

        def done(completed: Future[str]) -> None:
            self._finished()
            error = completed.exception()
            on_done(None if error is None else classify(error))

        future.add_done_callback(done)

    def _finished(self) -> None:
        with self._count_lock:
            self._pending -= 1

    def resume(self, topic: str, ordering_key: str) -> None:
        self._client.resume_publish(self.topic_path(topic), ordering_key)

    def flush(self, timeout: float) -> bool:
        """Only used at shutdown; polls rather than making every callback signal a condition."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._pending == 0

    def close(self) -> None:
        self._client.stop()
