"""A call scheduled on a clock's timeline: ordered by time, then by when it was scheduled."""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field


@define(order=True)
class ScheduledCall:
    at: float
    order: int
    fn: Callable[[], None] = field(order=False)
    cancelled: bool = field(default=False, order=False)

    def cancel(self) -> None:
        self.cancelled = True
