"""``make run`` (``python -m entrypoints.dev_run``) as a person at a terminal uses it: Ctrl-C at any
moment prints no traceback and leaves no emulator behind; a busy port says how to pick another.

Ctrl-C is SIGINT to the foreground process group, so each run gets a session of its own and the
signal goes to the group. Every process it starts inherits a marker variable; after the run no
process may still carry it (the emulators run in sessions of their own, so only the marker finds
them once their parent is gone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import gcp_emulators

GENEROUS_S = 120  # two JVM emulators start and stop on a loaded 2-core machine

pytestmark = pytest.mark.skipif(
    not (gcp_emulators.available("pubsub") and gcp_emulators.available("firestore")),
    reason="make run starts the gcloud emulators, which are not installed here",
)


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


class MakeRun:
    def __init__(self, env: dict[str, str]) -> None:
        self.marker = f"CONNECTOR_TEST_MARKER={uuid.uuid4().hex}"
        name, value = self.marker.split("=")
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST") and k != "PORT"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.dev_run"],
            env={**clean, "PYTHONUNBUFFERED": "1", "RATE": "50", name: value, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.seen: list[str] = []

    def wait_for(self, fragment: str) -> None:
        """Read stdout until a line contains ``fragment`` (the process's own progress is the event)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(line)
            if fragment in line:
                return
        pytest.fail(f"no line with {fragment!r}; saw {self.seen}; stderr {self.stderr()}")

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self) -> tuple[int, str]:
        out, err = self.process.communicate(timeout=GENEROUS_S)
        return self.process.returncode, "".join(self.seen) + out + err

    def stderr(self) -> str:
        return "" if self.process.stderr is None else self.process.stderr.read()

    def kill(self) -> None:
        for pid in _marked(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def make_run() -> Iterator[list[MakeRun]]:
    runs: list[MakeRun] = []
    yield runs
    for run in runs:  # a failed test still leaves nothing running
        if run.process.poll() is None:
            run.process.kill()
        run.kill()


def test_ctrl_c_while_the_emulators_start(make_run: list[MakeRun]) -> None:
    run = MakeRun({"PORT": str(gcp_emulators.free_port())})
    make_run.append(run)
    run.wait_for("starting the Pub/Sub and Firestore emulators")
    run.ctrl_c()
    code, output = run.finish()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert code == 130, output
    assert _marked(run.marker) == [], output


def test_ctrl_c_while_running_prints_the_summary_and_stops_the_emulators(make_run: list[MakeRun]) -> None:
    run = MakeRun({"PORT": str(gcp_emulators.free_port())})
    make_run.append(run)
    run.wait_for("invalid on purpose")
    run.ctrl_c()
    code, output = run.finish()
    assert "Traceback" not in output, output
    assert code == 0, output
    assert "summary:" in output and "emulators stopped" in output
    assert _marked(run.marker) == [], output


def test_a_busy_port_says_how_to_pick_another_and_starts_nothing(make_run: list[MakeRun]) -> None:
    with socket.create_server(("0.0.0.0", 0)) as busy:
        port = busy.getsockname()[1]
        run = MakeRun({"PORT": str(port)})
        make_run.append(run)
        code, output = run.finish()
    assert code == 1, output
    assert f"error: port {port} is busy" in output and f"PORT={port + 1} make run" in output
    assert "Traceback" not in output
    assert _marked(run.marker) == [], output
