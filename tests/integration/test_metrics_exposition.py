"""``/metrics`` of a running ``connector run``: clean for ``promtool check metrics``, and exporting every
metric the shipped alerts and dashboard name.

The connector runs in-memory (no emulators needed) on simulated events, some of them invalid and
dead-lettered, so the labelled series have samples; the JSONL source follows its file, so the
process stays up to be scraped until the test stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters import gcp_emulators
from tests.monitoring import MONGODB_ONLY, exported_names, run_promtool, used_metric_names

CONNECTOR = [sys.executable, "-c", "from entrypoints.cli import main; main()"]


def scrape(port: int) -> str:
    with contextlib.suppress(OSError):
        return str(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    return ""


def poll(condition: Callable[[], bool], *, deadline_s: float, what: str) -> None:
    """Polls an HTTP endpoint of another process: there is no event to wait on."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {deadline_s:.0f} s waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_connector(config: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    """``connector run --config config`` on a free port; stopped with SIGTERM, which must exit 0."""
    port = gcp_emulators.free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CONNECTOR, "run", "--config", str(config)], env={**env, "PORT": str(port)}, stdout=out, stderr=out
        )
        try:
            yield port
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def simulated_events(path: Path, count: int) -> Path:
    simulated = subprocess.run(
        [*CONNECTOR, "simulate", "--count", str(count), "--seed", "5"], capture_output=True, timeout=120, check=True
    )
    path.write_bytes(simulated.stdout)
    return path


def test_metrics_of_a_running_connector_pass_promtool_and_cover_the_rules_and_dashboard(tmp_path: Path) -> None:
    events = simulated_events(tmp_path / "events.jsonl", 2000)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
source: jsonl
jsonl: {{path: {events}, follow: true}}
pubsub: {{backend: memory, dead_letter_topic: dead-letters}}
token_store: {{backend: memory}}
schemas: {{on_invalid: dead_letter}}
http: {{host: 127.0.0.1}}
logging: {{level: WARNING}}
"""
    )
    with running_connector(config, dict(os.environ), tmp_path / "connector.log") as port:
        poll(
            lambda: "connector_dead_letters_published_total{" in scrape(port) and "connector_ready 1.0" in scrape(port),
            deadline_s=120,
            what="a ready connector that has dead-lettered an invalid event",
        )
        text = scrape(port)

    checked = run_promtool("check", "metrics", stdin=text.encode())
    assert checked.returncode == 0, checked.stdout + checked.stderr

    exported = exported_names(text)
    known = exported | MONGODB_ONLY
    missing = {name: sorted(where) for name, where in used_metric_names().items() if name not in known}
    assert not missing, f"rules/dashboard use metrics /metrics does not export: {missing}"
    misleading = MONGODB_ONLY & exported
    assert not misleading, f"{sorted(misleading)} exported by a file source: it has no oplog to measure"
