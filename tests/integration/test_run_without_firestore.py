"""``connector run`` pointed at a Firestore that is not there (a new user's wrong
FIRESTORE_EMULATOR_HOST): one WARNING line naming the host, never the false "other instances hold
every stream's lease", and SIGTERM still stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from adapters import gcp_emulators

from .test_lease_takeover import wait_for
from .test_run_end_to_end import CONNECTOR, connector
from .test_shutdown import GRACE_S, events

FIRST_LINE_S = 40  # the first lease attempt fails after token_store.timeout_s (10 s); the rest is a loaded machine


def test_an_unreachable_firestore_is_named_and_sigterm_still_exits_0(tmp_path: Path) -> None:
    host = f"127.0.0.1:{gcp_emulators.free_port()}"  # nothing listens there
    source = tmp_path / "events.jsonl"
    source.write_text(connector("simulate", "--count", "5", env=dict(os.environ)).stdout.decode())
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "CONNECTOR_PUBSUB__BACKEND": "memory",
           "CONNECTOR_SOURCE": "jsonl", "CONNECTOR_JSONL__PATH": str(source), "PORT": "0"}  # fmt: skip
    log = tmp_path / "connector.log"
    with log.open("wb") as output:
        process = subprocess.Popen([*CONNECTOR, "run"], env=env, stdout=output, stderr=output)
    try:
        wait_for(lambda: bool(events(log, "token_store_unreachable")), FIRST_LINE_S, "the unreachable line")
        (line,) = events(log, "token_store_unreachable")
        assert host in line["error"] and line["level"] == "WARNING"
        assert not events(log, "standby") and "Traceback" not in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=GRACE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
