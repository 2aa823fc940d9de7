"""The Publisher port on google-cloud-pubsub's generated client: one Publish RPC per request.

The client library's ``publish()`` pays for a future, a batch thread and a callback per message, and
its per-key batching sends one small request at a time per key. The application already groups
messages into requests per ordering key (``application.dispatcher``), so this adapter only sends
them: ``PublisherClient().api.publish`` from a bounded thread pool, each call with a deadline and
google.api_core's retry for transient errors within it. What is left after the deadline becomes a
``PublishError``, retryable or fatal with advice; the application retries the request whole.
"""

from __future__ import annotations

import warnings
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.api_core.timeout import TimeToDeadlineTimeout
from google.cloud import pubsub_v1
from google.pubsub_v1 import types as gapic_types

from adapters.daemon_pool import DaemonPool
from application.ports import PublishError, PublishRequest, RequestDone

_FATAL: dict[type[Exception], str] = {
    gexc.NotFound: "create the topic (connector check --create-missing) or fix streams[].topic",
    gexc.PermissionDenied: "grant the service account roles/pubsub.publisher on the topic",
    gexc.Unauthenticated: "provide credentials (GOOGLE_APPLICATION_CREDENTIALS or the Cloud Run service account)",
    gexc.InvalidArgument: "the message was refused as invalid; check its size and attributes",
    gexc.FailedPrecondition: "check the topic's configuration (e.g. a schema attached to it)",
}

_TRANSIENT = (gexc.Aborted, gexc.Cancelled, gexc.DeadlineExceeded, gexc.InternalServerError,
              gexc.ResourceExhausted, gexc.ServiceUnavailable, gexc.Unknown)  # fmt: skip

_raw_request = gapic_types.PublishRequest.pb()
_wrap_request = gapic_types.PublishRequest.wrap


def classify(error: BaseException) -> PublishError:
    """Turn a client exception into a ``PublishError`` that says whether retrying can help."""
    for kind, recovery in _FATAL.items():
        if isinstance(error, kind):
            return PublishError(f"{type(error).__name__}: {error}", retryable=False, recovery=recovery)
    return PublishError(f"{type(error).__name__}: {error}", retryable=True)


class PubSubPublisher:
    """Implements the Publisher port. ``max_workers`` RPCs run at once; each ends within ``deadline_s``."""

    def __init__(
        self,
        *,
        project_id: str,
        max_workers: int = 8,
        deadline_s: float = 30.0,
        client: Any | None = None,
    ) -> None:
        self._project_id = project_id
        self._client = client or pubsub_v1.PublisherClient()
        with warnings.catch_warnings():  # ``api`` is the generated client; the wrapper calls it "compatibility"
            warnings.simplefilter("ignore", DeprecationWarning)
            self._api = self._client.api
        self._deadline_s = deadline_s
        self._retry = retries.Retry(
            predicate=retries.if_exception_type(*_TRANSIENT),
            initial=0.1,
            maximum=5.0,
            multiplier=2.0,
            timeout=deadline_s,
        )
        self._pool = DaemonPool(workers=max_workers, name="pubsub-publish")
        self._paths: dict[str, str] = {}

    @property
    def client(self) -> Any:
        return self._client

    def topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = self._paths[topic] = self._client.topic_path(self._project_id, topic)
        return path

    def send(self, request: PublishRequest, on_done: RequestDone) -> None:
        self._pool.submit(self._call, request, on_done)

    def _call(self, request: PublishRequest, on_done: RequestDone) -> None:
        try:
            # Messages built in place in the raw request (~2 us each), which is wrapped without a copy:
            # proto-plus messages per item, then marshalled into the request, cost ~20 us each.
            raw = _raw_request(topic=self.topic_path(request.topic))
            add, key = raw.messages.add, request.ordering_key
            for message in request.messages:
                add(data=message.data, ordering_key=key, attributes=message.attributes)
            self._api.publish(
                request=_wrap_request(raw), retry=self._retry, timeout=TimeToDeadlineTimeout(timeout=self._deadline_s)
            )
        except Exception as error:  # every failure is answered: retryable or fatal, never lost
            on_done(classify(error))
            return
        on_done(None)

    def close(self) -> None:
        """No waiting: requests still queued or in flight answer later, or die with the process (their
        messages were never settled, so the checkpoint stays before them)."""
        self._pool.close()
