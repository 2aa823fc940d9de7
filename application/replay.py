"""Dry run: the same processing step as ``run``, writing would-be messages instead of publishing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from attrs import define, field

from application.outcomes import Publish, Reject
from application.processing import ProcessingStep
from domain.change_event import ChangeEvent
from domain.envelope import OutboundMessage


class MessageSink(Protocol):
    """Where replay puts each message that ``run`` would publish."""

    def write(self, message: OutboundMessage) -> None:
        """Record one message; called in source order."""


class InvalidDocumentStop(Exception):
    """``schemas.on_invalid: fail`` met an invalid document."""


@define
class ReplaySummary:
    events: int = 0
    messages: int = 0
    published: int = 0
    rejected: Counter[str] = field(factory=Counter)
    skipped: Counter[str] = field(factory=Counter)


def replay(
    *,
    events: Iterable[tuple[object, ChangeEvent]],
    step: ProcessingStep,
    sink: MessageSink,
    fail_on_invalid: bool = False,
) -> ReplaySummary:
    """Process every event in order; raise :class:`InvalidDocumentStop` on the first rejection if asked."""
    summary = ReplaySummary()
    for position, event in events:
        summary.events += 1
        outcome = step.process(event)
        if isinstance(outcome, Publish):
            summary.published += 1
            for message in outcome.messages:
                sink.write(message)
                summary.messages += 1
        elif isinstance(outcome, Reject):
            summary.rejected[outcome.reason.value] += 1
            if fail_on_invalid:
                raise InvalidDocumentStop(
                    f"{position}: document rejected ({outcome.reason.value}) and schemas.on_invalid is fail"
                )
            if outcome.dead_letter is not None:
                sink.write(outcome.dead_letter)
                summary.messages += 1
        else:
            summary.skipped[outcome.reason.value] += 1
    return summary
