"""A driver-level double of pymongo's change stream: the methods the source calls, real-format events
(decoded with bson, as ``watch()`` returns them) and pymongo's real exception classes.

No MongoDB server can run on these machines; this double is what the source's unit tests run
against, and the same tests run against a real replica set when CONNECTOR_TEST_MONGODB_URI is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attrs import define, field
from pymongo.errors import OperationFailure

Step = dict[str, Any] | None | BaseException
"""An event, ``None`` (an idle ``try_next``), or an exception the driver raises."""


def operation_failure(code: int, message: str, *, labels: Iterable[str] = ()) -> OperationFailure:
    """An OperationFailure as the server reports it, with error labels."""
    return OperationFailure(
        message, code=code, details={"ok": 0, "code": code, "errmsg": message, "errorLabels": list(labels)}
    )


@define
class FakeChangeStream:
    steps: list[Step]
    post_batch_tokens: list[dict[str, Any]] = field(factory=list)
    alive: bool = True
    closed: bool = False
    resume_token: dict[str, Any] | None = None

    def __enter__(self) -> FakeChangeStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        self.alive = False

    def try_next(self) -> dict[str, Any] | None:
        if not self.steps:
            self.alive = False
            return None
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            self.alive = False
            raise step
        if step is None:
            if self.post_batch_tokens:
                self.resume_token = self.post_batch_tokens.pop(0)
            return None
        self.resume_token = step["_id"]
        if step.get("operationType") == "invalidate":
            self.alive = False
        return step


@define
class FakeDatabase:
    client: FakeClient
    name: str

    def watch(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> FakeChangeStream:
        self.client.watch_calls.append((self.name, pipeline, kwargs))
        if not self.client.streams:
            return FakeChangeStream(steps=[])
        return self.client.streams.pop(0)


@define
class FakeAdmin:
    client: FakeClient

    def command(self, name: str) -> dict[str, Any]:
        assert name == "hello"
        return {"isWritablePrimary": True, "setName": "rs0", "maxWireVersion": self.client.wire_version,
                **self.client.hello_extra}  # fmt: skip


@define
class FakeClient:
    """Stands in for ``MongoClient``: ``client.admin.command("hello")`` and ``client[db].watch(...)``."""

    streams: list[FakeChangeStream] = field(factory=list)
    wire_version: int = 21
    watch_calls: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = field(factory=list)
    hello_extra: dict[str, Any] = field(factory=dict)

    @property
    def admin(self) -> FakeAdmin:
        return FakeAdmin(self)

    def __getitem__(self, name: str) -> FakeDatabase:
        return FakeDatabase(self, name)


@define
class FakeCursor:
    documents: list[dict[str, Any]]

    def sort(self, key: str, direction: int) -> FakeCursor:
        return FakeCursor(sorted(self.documents, key=lambda d: d[key], reverse=direction < 0))

    def batch_size(self, _: int) -> FakeCursor:
        return self

    def __iter__(self) -> Any:
        return iter(self.documents)


@define
class FakeCollection:
    """``find({"_id": {"$gt": x}})`` and ``estimated_document_count()`` over a list of documents."""

    documents: list[dict[str, Any]]
    queries: list[dict[str, Any]] = field(factory=list)

    def find(self, query: dict[str, Any]) -> FakeCursor:
        self.queries.append(query)
        after = query.get("_id", {}).get("$gt")
        return FakeCursor([d for d in self.documents if after is None or d["_id"] > after])

    def estimated_document_count(self) -> int:
        return len(self.documents)
