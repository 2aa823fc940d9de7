"""``source: jsonl``: change events from a file, resumable like a change stream (CONTRACT §6).

On start it skips through the stored token; a token that is not in the file is an error rather than
a silent replay from the top (that would re-publish everything, or worse, skip what was never sent).
At the end of the file it ends (``run`` then drains, checkpoints and exits 0) unless ``follow`` is
set, in which case it waits for more lines like ``tail -f``. Events come in batches of what the file
holds now (up to ``batch_size``): a batch is handed on before any wait for the file to grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from application.event_flow import EventInputError, batched
from application.ports import SourceBatch, SourceError, SourceEvent, SourceItem, StartPosition
from domain.change_event import ChangeEvent, MalformedEventError, parse_change_event
from domain.event_codec import EventDecodeError, decode_event_line
from domain.split_events import SplitEventAssembler, SplitEventError


class JsonlSource:
    """Implements the ChangeSource port over a JSONL file."""

    def __init__(
        self,
        path: Path,
        *,
        follow: bool = False,
        poll_interval: float = 0.2,
        wait: Callable[[Callable[[], bool], float], bool] | None = None,
        batch_size: int = 1000,
    ) -> None:
        self._batch_size = batch_size
        self._path = path
        self._follow = follow
        self._poll_interval = poll_interval
        self._wait = wait or (lambda stop, seconds: stop() or bool(time.sleep(seconds)))
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        return batched(self._items(start), size=self._batch_size)

    def _items(self, start: StartPosition) -> Iterator[SourceItem | None]:
        """Items, and None whenever the file has nothing more for now."""
        self._closed = False
        after = start.resume_after or start.start_after
        skipping = after is not None
        try:
            for event in self._events():
                if self._closed:
                    return
                if event is None:
                    yield None
                    continue
                if skipping:
                    assert after is not None
                    if event.token.data == after.data:
                        skipping = False
                    elif event.token.data > after.data:
                        raise _token_missing(self._path, after.data)
                    continue
                if start.at_time is not None and event.cluster_time is not None and event.cluster_time < start.at_time:
                    continue
                yield SourceEvent(event)
        except EventInputError as error:
            raise SourceError(
                f"{error}",
                retryable=False,
                recovery="fix or remove that line; the checkpoint stays before it",
            ) from None
        if skipping and after is not None:
            raise _token_missing(self._path, after.data)

    def _events(self) -> Iterator[ChangeEvent | None]:
        """Whole events (split fragments joined), or None before a wait for more lines."""
        try:
            handle = self._path.open("rb")
        except OSError as error:
            raise SourceError(
                f"cannot open {self._path}: {error.strerror}",
                retryable=False,
                recovery="set jsonl.path to a readable file",
            ) from None
        assembler = SplitEventAssembler()
        number = 0
        with handle:
            for line in self._lines(handle):
                if line is None:
                    yield None
                    continue
                number += 1
                if not line.strip():
                    continue
                try:
                    whole = assembler.feed(decode_event_line(line))
                    if whole is not None:
                        yield parse_change_event(whole)
                except EventDecodeError as error:
                    raise EventInputError(
                        f"{self._path}:{number}", f"{error}; each line must be one change event"
                    ) from None
                except (SplitEventError, MalformedEventError) as error:
                    raise EventInputError(f"{self._path}:{number}", str(error)) from None

    def _lines(self, handle: object) -> Iterator[bytes | None]:
        partial = b""
        while True:
            line = handle.readline()  # type: ignore[attr-defined]
            if line.endswith(b"\n"):
                yield partial + line
                partial = b""
                continue
            partial += line
            if not self._follow or self._closed:
                if partial.strip():
                    yield partial
                return
            yield None  # nothing more for now: the batch so far goes out before the wait
            self._wait(lambda: self._closed, self._poll_interval)


def _token_missing(path: Path, token: str) -> SourceError:
    return SourceError(
        f"the stored resume token {token[:40]}… is not in {path}",
        retryable=False,
        recovery=f"point jsonl.path at the file it came from, or run `connector admin tokens reset <stream> --yes` "
        f"to start {path.name} from the top",
    )
