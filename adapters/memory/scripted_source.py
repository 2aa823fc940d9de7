"""A change source that plays a fixed list of events, for tests: resumes like a real stream, can
fail at chosen points (the batch gathered so far is handed on first, as the MongoDB source does), paces
itself on the clock, yields batches of up to ``batch_size``, then idles with heartbeats and ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from application.ports import Heartbeat, SourceBatch, SourceError, SourceEvent, SourceItem, StartPosition
from domain.change_event import ChangeEvent


class ScriptedSource:
    """Implements the ChangeSource port over ``events`` (in token order)."""

    def __init__(
        self,
        events: Sequence[ChangeEvent],
        *,
        advance: Callable[[float], None] | None = None,
        interval: float = 0.001,
        fail_at: Callable[[int], SourceError | None] | None = None,
        heartbeats: Sequence[Heartbeat] = (),
        batch_size: int = 8,
    ) -> None:
        self._batch_size = batch_size
        self._events = list(events)
        self._advance = advance
        self._interval = interval
        self._fail_at = fail_at
        self._heartbeats = list(heartbeats)
        self._closed = False
        self.reads: list[StartPosition] = []
        self.delivered = 0

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        self.reads.append(start)
        self._closed = False
        index = 0
        after = start.resume_after or start.start_after
        if after is not None:
            tokens = [e.token.data for e in self._events]
            if after.data not in tokens:
                raise SourceError(f"resume token {after.data[:24]}… not in the stream", retryable=False)
            index = tokens.index(after.data) + 1
        batch: list[SourceItem] = []
        for event in self._events[index:]:
            if self._closed:
                return
            if len(batch) >= self._batch_size:
                yield batch
                batch = []
            if start.at_time is not None and event.cluster_time is not None and event.cluster_time < start.at_time:
                continue  # startAtOperationTime: the server never sends what came before
            if self._fail_at is not None:
                error = self._fail_at(self.delivered)
                if error is not None:
                    if batch:
                        yield batch
                    raise error
            if self._advance is not None:
                self._advance(self._interval)
            self.delivered += 1
            batch.append(SourceEvent(event))
        if batch and not self._closed:
            yield batch
        for heartbeat in self._heartbeats:  # an idle stream: post-batch tokens only
            if self._closed:
                return
            if self._advance is not None:
                self._advance(self._interval)
            yield [heartbeat]

    def close(self) -> None:
        self._closed = True
