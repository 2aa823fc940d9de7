"""Test-wide set-up: in-process log lines are kept quiet (tests that read logs run the CLI)."""

from __future__ import annotations

import io

from entrypoints.logging_setup import configure_logging

configure_logging(level="ERROR", stream=io.StringIO())
