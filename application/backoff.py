"""Exponential backoff with jitter, from the ``retry`` config, built on tenacity's wait strategies.

The pipeline schedules retries on its clock instead of sleeping (a failed publish must not stall
other ordering keys), so it asks tenacity for the *delay* of attempt N rather than running
``Retrying`` loops; blocking call sites use :meth:`RetryPolicy.retrying`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tenacity
from attrs import frozen


@frozen
class RetryPolicy:
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    multiplier: float = 2.0
    max_elapsed_s: float = 0.0  # 0 = retry forever

    def _wait(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential_jitter(
            multiplier=self.initial_backoff_s,
            max=self.max_backoff_s,
            exp_base=self.multiplier,
            jitter=self.initial_backoff_s,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = max(1, attempt)
        return float(min(self._wait()(state), self.max_backoff_s))

    def gave_up(self, first_failure: float, now: float) -> bool:
        """True once failures have lasted longer than ``max_elapsed_s`` (never when it is 0)."""
        return self.max_elapsed_s > 0 and now - first_failure >= self.max_elapsed_s

    def retrying(
        self,
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        sleep: Callable[[float], Any],
        before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
    ) -> tenacity.Retrying:
        """A tenacity loop for blocking call sites (token store loads, source reopen)."""
        stop: tenacity.stop.stop_base = (
            tenacity.stop_after_delay(self.max_elapsed_s) if self.max_elapsed_s > 0 else tenacity.stop_never
        )
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(retry_on),
            wait=self._wait(),
            stop=stop,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
