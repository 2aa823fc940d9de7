"""``source: simulated``: the built-in workload as a change source, paced and resumable.

Resuming regenerates the (deterministic) workload and skips through the stored token, exactly as
the JSONL source does with a file, so ``make run`` can be stopped and started like a real stream.
Events come in chunks of up to ``batch_size``; a chunk is handed on before any pacing wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from adapters.simulator import WorkloadSpec, generate_events
from application.event_flow import batched, whole_events
from application.ports import SourceBatch, SourceError, SourceEvent, SourceItem, StartPosition
from domain.extended_json import extended_json_to_json
from domain.json_types import JsonObject

_SLACK_S = 0.002
"""Events due within this much are released together rather than one wait each."""


class SimulatedSource:
    """Implements the ChangeSource port; ``rate`` events/s (0 = as fast as the pipeline takes them)."""

    def __init__(
        self,
        spec: WorkloadSpec,
        *,
        rate: float = 0.0,
        wait: Callable[[Callable[[], bool], float], bool],
        monotonic: Callable[[], float],
        batch_size: int = 1000,
    ) -> None:
        self._batch_size = batch_size
        self._spec = spec
        self._rate = rate
        self._wait = wait
        self._monotonic = monotonic
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def _raw(self) -> Iterator[tuple[int, JsonObject]]:
        for number, event in enumerate(generate_events(self._spec)):
            mapped = extended_json_to_json(event)
            assert isinstance(mapped, dict)
            yield number, mapped

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        return batched(self._items(start), size=self._batch_size)

    def _items(self, start: StartPosition) -> Iterator[SourceItem | None]:
        """Items, and None before every pacing wait."""
        self._closed = False
        after = start.resume_after or start.start_after
        skipping = after is not None
        started, emitted = self._monotonic(), 0
        for _, event in whole_events(self._raw()):
            if self._closed:
                return
            if skipping:
                assert after is not None
                if event.token.data >= after.data:
                    skipping = False
                    if event.token.data > after.data:
                        raise SourceError(
                            f"resume token {after.data[:40]}… is not part of the simulated workload (seed "
                            f"{self._spec.seed})",
                            retryable=False,
                            recovery="use the seed it came from, or connector admin tokens reset <stream> --yes",
                        )
                continue
            if start.at_time is not None and event.cluster_time is not None and event.cluster_time < start.at_time:
                continue
            if self._rate > 0:
                emitted += 1
                ahead = emitted / self._rate - (self._monotonic() - started)
                if ahead > _SLACK_S:
                    yield None
                    if self._wait(lambda: self._closed, ahead):
                        return
            yield SourceEvent(event)
        if skipping and after is not None:
            raise SourceError(
                f"resume token {after.data[:40]}… is past the end of the simulated workload",
                retryable=False,
                recovery="raise simulated.count, or connector admin tokens reset <stream> --yes",
            )
