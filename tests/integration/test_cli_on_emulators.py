"""Operator commands against the emulators: check --create-missing, admin tokens on Firestore, and
/metrics of a running worker parsed as Prometheus text."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from adapters import gcp_emulators
from adapters.simulator import WorkloadSpec, generate_events

from .test_run_end_to_end import CONNECTOR, STOP_WAIT_S, Deployment


def connector(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONNECTOR, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_check_creates_missing_topics(tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator,
                                      firestore_emulator: gcp_emulators.Emulator) -> None:  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(
        f"source: jsonl\nstreams: [{{collection: inventory, topic: fresh-{unique}}}]\n"
        f"pubsub: {{project_id: connector-test, dead_letter_topic: dlq-{unique}}}\n"
    )
    env = {**os.environ, **pubsub_emulator.env, **firestore_emulator.env}
    first = connector("check", "--config", str(config), env=env)
    assert first.returncode == 1 and f"missing topics fresh-{unique}, dlq-{unique}" in first.stdout
    created = connector("check", "--config", str(config), "--create-missing", env=env)
    assert created.returncode == 0, created.stdout
    assert "topics     ok    created" in created.stdout and "firestore  ok" in created.stdout
    assert connector("check", "--config", str(config), env=env).returncode == 0


def test_admin_tokens_on_firestore(deployment: Deployment, firestore_emulator: gcp_emulators.Emulator) -> None:
    events = list(generate_events(WorkloadSpec(count=100)))
    deployment.events.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in events))
    args = ("--config", str(deployment.config))
    assert connector("run", *args, env=deployment.env).returncode == 0
    listed = connector("admin", "tokens", "list", *args, env=deployment.env)
    assert "warehouse" in listed.stdout and events[-1]["_id"]["_data"][:60] in listed.stdout
    got = json.loads(connector("admin", "tokens", "get", "warehouse", *args, env=deployment.env).stdout)
    assert got["token"] == {"_data": events[-1]["_id"]["_data"]} and got["cluster_time"].endswith("Z")

    rewind = events[49]["_id"]["_data"]
    assert (
        connector("admin", "tokens", "set", "warehouse", "--token", rewind, *args, env=deployment.env).returncode == 0
    )
    store = deployment.store(firestore_emulator)
    assert store.load("warehouse").token.data == rewind  # type: ignore[union-attr]
    rerun = connector("run", *args, env={**deployment.env, "CONNECTOR_LOGGING__LEVEL": "INFO"})
    stopped = [json.loads(line) for line in rerun.stdout.splitlines() if '"pipeline_stopped"' in line]
    assert stopped and stopped[0]["events"] == 50  # resumed after event 50, read the other 50

    at = "2025-01-01T00:00:01Z"
    assert connector("admin", "tokens", "set", "warehouse", "--at", at, *args, env=deployment.env).returncode == 0
    moved = store.load("warehouse")
    assert moved is not None and moved.token is None and moved.cluster_time is not None
    assert connector("admin", "tokens", "reset", "warehouse", "--yes", *args, env=deployment.env).returncode == 0
    assert store.load("warehouse") is None


def test_metrics_are_valid_prometheus_text_while_running(deployment: Deployment) -> None:
    events = list(generate_events(WorkloadSpec(count=200)))
    deployment.events.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in events))
    deployment.config.write_text(deployment.config.read_text().replace("jsonl: {path:", "jsonl: {follow: true, path:"))
    port = gcp_emulators.free_port()
    process = subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)],
                               env={**deployment.env, "PORT": str(port)}, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        text = ""
        deadline = time.monotonic() + 60
        while "connector_events_published_total{" not in text and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            time.sleep(0.1)  # polling a scrape endpoint: nothing to await
        families = {family.name: family for family in text_string_to_metric_families(text)}
        for name in ("connector_events_read", "connector_events_published", "connector_publish_latency_seconds",
                     "connector_lag_seconds", "connector_checkpoint_age_seconds", "connector_in_flight_messages",
                     "connector_retries", "connector_lease_owned", "connector_events_rejected"):  # fmt: skip
            assert name in families, name
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        assert health.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
