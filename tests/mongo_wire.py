"""A scripted MongoDB primary at the wire level, for tests that run the real pymongo driver.

No mongod can run here, and a hand-written stand-in for pymongo would fake away exactly what matters
(pymongo's own resume, post-batch tokens, getMore, error labels). So the driver talks OP_MSG to
``mockupdb`` (MongoDB's own wire-protocol test server) and each test answers every request itself:
it awaits the request (with a timeout generous enough for a loaded machine), checks its shape and
replies with batches, error codes or a hang-up. Nothing here sleeps.

The code under test reads in a background thread (:class:`Reader`); its items arrive on a queue the
test awaits, so the script and the reader proceed in lock-step without timing assumptions.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from bson import Int64
from mockupdb import Matcher, MockupDB, OpMsg
from pymongo import MongoClient
from structlog.testing import capture_logs

WAIT_S = 30.0  # per awaited request or item: a loaded 2-core machine can be slow, never this slow
CURSOR_ID = 4242
WIRE_VERSIONS = {"4.4": 9, "5.0": 13, "6.0": 17, "7.0": 21}


def token(n: int, *, seconds: int = 1_735_689_600) -> dict[str, str]:
    """A KeyString-shaped resume token whose cluster time is ``seconds`` (increment ``n``)."""
    return {"_data": f"82{seconds:08X}{n:08X}2B0429{n:012X}04"}


class _Named(Matcher):
    """Matches a command by name whatever its value (mockupdb's own matcher compares the value too)."""

    def __init__(self, name: str) -> None:
        super().__init__(OpMsg(name))
        self._name = name.lower()

    def matches(self, *args: Any, **kwargs: Any) -> bool:
        request = args[0]
        return bool(getattr(request, "command_name", "").lower() == self._name)


class ScriptedPrimary:
    """A replica-set primary of a given wire version; the test answers each request itself."""

    def __init__(self, *, wire_version: int = 21, extra_hello: dict[str, Any] | None = None) -> None:
        hello = {
            "ismaster": True,
            "isWritablePrimary": True,
            "minWireVersion": 0,
            "maxWireVersion": wire_version,
            "setName": "rs0",
            "logicalSessionTimeoutMinutes": 30,
            **(extra_hello or {}),
        }
        self.server = MockupDB(auto_ismaster=hello, request_timeout=WAIT_S)
        self.server.autoresponds(_Named("hello"), hello)
        self.server.autoresponds(_Named("killCursors"), cursorsKilled=[Int64(CURSOR_ID)])
        self.server.autoresponds(_Named("endSessions"))
        self.server.run()
        self.clients: list[MongoClient[Any]] = []
        self.pending: OpMsg | None = None  # the request awaiting the test's answer

    def always(self, command: str, **reply: Any) -> None:
        """Answer every ``command`` with ``reply`` from now on (for a driver in another process)."""
        self.server.autoresponds(_Named(command), **reply)

    def client(self, **options: Any) -> MongoClient[Any]:
        settings: dict[str, Any] = {"directConnection": True, "serverSelectionTimeoutMS": 10_000, **options}
        client: MongoClient[Any] = MongoClient(self.server.uri, **settings)
        self.clients.append(client)
        return client

    def finish(self, stop: Callable[[], None], thread: threading.Thread) -> None:
        """End a reader blocked in a getMore or a (re)opening aggregate: from now on both get empty
        answers, then ``stop()``. A reader that reopened after an invalidate just before the stop waits
        on an aggregate, so that needs its answer as much as a getMore does."""
        self.server.autoresponds(_Named("getMore"), self._empty_batch)
        self.server.autoresponds(_Named("aggregate"), self._empty_first_batch)
        stop()
        if self.pending is not None and self.pending.command_name == "getMore":
            self._answered(self._empty_batch)
        while thread.is_alive():  # a request queued before the autoresponders came still needs its answer
            try:
                request = self.server.receives(timeout=0.2)
            except AssertionError:  # nothing queued: the reader is on its way out
                thread.join(0.2)
                continue
            if request is not None and request.command_name == "getMore":
                self._empty_batch(request)
            elif request is not None and request.command_name == "aggregate":
                self._empty_first_batch(request)

    @staticmethod
    def _empty_first_batch(request: OpMsg) -> bool:
        cursor = {"id": Int64(CURSOR_ID), "ns": "warehouse.$cmd.aggregate", "firstBatch": []}
        return bool(request.replies({"cursor": cursor, "ok": 1}))

    @staticmethod
    def _empty_batch(request: OpMsg) -> bool:
        cursor = {"id": Int64(CURSOR_ID), "ns": "warehouse.$cmd.aggregate", "nextBatch": []}
        return bool(request.replies({"cursor": cursor, "ok": 1}))

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        # mockupdb closes its sockets at once, then joins its accept thread, which polls once a second:
        # nothing is left to wait for, so the join happens on the side.
        threading.Thread(target=self.server.stop, daemon=True).start()

    # ---------------------------------------------------------------- awaiting requests

    def receives(self, command: str) -> OpMsg:
        request = self.server.receives(timeout=WAIT_S)
        assert request is not None, "the scripted server was stopped"
        assert request.command_name == command, f"expected {command}, got {request.command_name}: {request.doc}"
        return request

    def aggregate(self) -> dict[str, Any]:
        """Await the next aggregate; return its ``$changeStream`` stage options (and keep the request)."""
        self.pending = request = self.receives("aggregate")
        stage: dict[str, Any] = request.doc["pipeline"][0]["$changeStream"]
        return stage

    def get_more(self) -> OpMsg:
        self.pending = request = self.receives("getMore")
        assert request.doc["getMore"] == CURSOR_ID
        return request

    # ---------------------------------------------------------------- answers to the pending request

    def batch(
        self,
        events: list[dict[str, Any]] | tuple[()] = (),
        *,
        post_batch: dict[str, Any] | None = None,
        cursor_id: int = CURSOR_ID,
    ) -> None:
        """Answer the pending aggregate (firstBatch) or getMore (nextBatch)."""
        assert self.pending is not None, "no request awaits an answer"
        first = self.pending.command_name == "aggregate"
        cursor: dict[str, Any] = {
            "id": Int64(cursor_id),
            "ns": "warehouse.$cmd.aggregate",
            "firstBatch" if first else "nextBatch": list(events),
        }
        if post_batch is not None:
            cursor["postBatchResumeToken"] = post_batch
        self._answered(lambda request: request.replies({"cursor": cursor, "ok": 1}))

    def error(self, code: int, message: str = "scripted failure", *, labels: tuple[str, ...] = ()) -> None:
        reply: dict[str, Any] = {"ok": 0, "code": code, "errmsg": message}
        if labels:
            reply["errorLabels"] = list(labels)
        self._answered(lambda request: request.replies(reply))

    def hang_up(self) -> None:
        self._answered(lambda request: request.hangup())

    def _answered(self, answer: Callable[[OpMsg], Any]) -> None:
        assert self.pending is not None, "no request awaits an answer"
        request, self.pending = self.pending, None
        answer(request)


class Reader:
    """Runs ``read`` (a generator of items) on a thread; the test awaits its items, or its error."""

    _END = object()

    def __init__(self, read: Callable[[], Iterator[Any]]) -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(read,), daemon=True)
        self._thread.start()

    def _run(self, read: Callable[[], Iterator[Any]]) -> None:
        try:
            for item in read():
                self.items.put(item)
        except BaseException as error:  # handed to the test thread
            self.error = error
        finally:
            self.items.put(self._END)

    def take(self, count: int = 1) -> list[Any]:
        taken = []
        for _ in range(count):
            item = self.items.get(timeout=WAIT_S)
            assert item is not self._END, f"the reader ended early: {self.error!r}"
            taken.append(item)
        return taken

    def ended(self) -> BaseException | None:
        """Await the end of the read; the error it ended with, if any."""
        assert self.items.get(timeout=WAIT_S) is self._END, "an item came where the end was expected"
        self._thread.join(WAIT_S)
        return self.error

    @property
    def thread(self) -> threading.Thread:
        return self._thread


class ServedCollection:
    """Answers ``find``/``getMore`` on one collection as a server does: ``_id`` order, an optional
    ``{_id: {$gt: ...}}`` filter, batches of the requested size. Each filter received is kept."""

    def __init__(self, primary: ScriptedPrimary, documents: list[dict[str, Any]], *, name: str = "inventory") -> None:
        self.documents = sorted(documents, key=lambda d: d["_id"])
        self.filters: list[dict[str, Any]] = []
        self._ns = f"warehouse.{name}"
        self._rest: dict[int, list[dict[str, Any]]] = {}
        primary.server.autoresponds(_Named("find"), self._find)
        primary.server.autoresponds(_Named("getMore"), self._get_more)

    def _find(self, request: OpMsg) -> bool:
        command = request.doc
        assert dict(command.get("sort", {})) == {"_id": 1}, command
        query = dict(command.get("filter", {}))
        self.filters.append(query)
        after = query.get("_id", {}).get("$gt")
        rows = [d for d in self.documents if after is None or d["_id"] > after]
        return self._reply(request, rows, command.get("batchSize", 101), "firstBatch")

    def _get_more(self, request: OpMsg) -> bool:
        rows = self._rest.pop(int(request.doc["getMore"]))
        return self._reply(request, rows, request.doc.get("batchSize", 101), "nextBatch")

    def _reply(self, request: OpMsg, rows: list[dict[str, Any]], size: int, key: str) -> bool:
        batch, rest = rows[:size], rows[size:]
        cursor_id = 0
        if rest:
            cursor_id = len(self._rest) + 1000 + len(self.filters)
            self._rest[cursor_id] = rest
        request.replies({"cursor": {"id": Int64(cursor_id), "ns": self._ns, key: batch}, "ok": 1})
        return True


@contextlib.contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Lines of INFO and up, captured (the test session's logging drops all but errors)."""
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**config)
