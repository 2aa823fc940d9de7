"""``make run``: the connector on its embedded default, with live progress and a summary on Ctrl-C.

Starts the Pub/Sub and Firestore emulators when gcloud has them (else uses the in-memory ones and
says so), creates the topics and a subscription per topic, and runs ``source: simulated``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from adapters import gcp_emulators
from entrypoints.config import load_config
from entrypoints.container import build_container
from entrypoints.http_server import ProbeApp, ProbeServer
from entrypoints.logging_setup import configure_logging

PROJECT = "local-project"


def _emulators() -> list[gcp_emulators.Emulator]:
    started: list[gcp_emulators.Emulator] = []
    if os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return started  # the user runs their own
    try:
        for kind in ("pubsub", "firestore"):
            emulator = gcp_emulators.start(kind, project=PROJECT)  # type: ignore[arg-type]
            started.append(emulator)
            os.environ.update(emulator.env)
    except gcp_emulators.EmulatorUnavailable as error:
        for emulator in started:
            emulator.stop()
        raise error
    return started


def _sample(registry: Any, name: str, labels: dict[str, str] | None = None) -> float:
    return float(registry.get_sample_value(name, labels or {}) or 0.0)


def _totals(registry: Any, name: str, label: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def main() -> None:
    emulators: list[gcp_emulators.Emulator] = []
    overrides = {
        "CONNECTOR_SOURCE": "simulated",
        "CONNECTOR_SIMULATED__RATE": os.environ.get("RATE", "500"),
        "CONNECTOR_SIMULATED__START_TIME": "now",
        "CONNECTOR_LOGGING__LEVEL": "ERROR",
        "CONNECTOR_LOGGING__FORMAT": "console",
        "CONNECTOR_PUBSUB__PROJECT_ID": PROJECT,
    }
    try:
        emulators = _emulators()
        hosts = os.environ["PUBSUB_EMULATOR_HOST"], os.environ["FIRESTORE_EMULATOR_HOST"]
        print(f"emulators: Pub/Sub {hosts[0]}, Firestore {hosts[1]}")
    except gcp_emulators.EmulatorUnavailable as error:
        print(f"NOTICE: {error}; running with in-memory Pub/Sub and token store instead")
        overrides.update(CONNECTOR_PUBSUB__BACKEND="memory", CONNECTOR_TOKEN_STORE__BACKEND="memory")
    os.environ.update({k: v for k, v in overrides.items() if k not in os.environ})
    config = load_config()
    configure_logging(level=config.logging.level, fmt=config.logging.format, stream=sys.stderr)
    if config.pubsub.backend == "pubsub":
        from adapters.pubsub_admin import ensure_subscription, ensure_topics

        ensure_topics(config.pubsub.project_id, [s.topic for s in config.streams])
        for stream in config.streams:
            ensure_subscription(config.pubsub.project_id, stream.topic, f"{stream.topic}-make-run")
        print(f"topics: {', '.join(s.topic for s in config.streams)} (subscriptions <topic>-make-run)")
    container = build_container(config)
    worker = container.worker()
    registry = container.metrics().registry
    server = ProbeServer(ProbeApp(health=container.health(), registry=registry), port=config.http.port).start()
    print(f"probes: http://localhost:{server.port}/health /readiness /metrics  —  Ctrl-C to stop\n")

    def on_signal(_: int, __: FrameType | None) -> None:
        worker.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()), name="worker")
    started = time.monotonic()
    thread.start()
    last_published, last_time = 0.0, started
    while thread.is_alive():
        thread.join(timeout=1.0)
        now = time.monotonic()
        published = sum(_totals(registry, "connector_events_published_total", "collection").values())
        rejected = _totals(registry, "connector_events_rejected_total", "reason")
        rate = (published - last_published) / max(1e-9, now - last_time)
        last_published, last_time = published, now
        checkpoint_age = _sample(registry, "connector_checkpoint_age_seconds")
        print(
            f"\r{now - started:6.0f}s  {rate:7.0f} ev/s  published {published:8.0f}  "
            f"rejected {sum(rejected.values()):5.0f} {dict((k, int(v)) for k, v in rejected.items())}  "
            f"lag {_sample(registry, 'connector_lag_seconds'):5.2f}s  checkpoint {checkpoint_age:4.1f}s ago   ",
            end="",
            flush=True,
        )
    server.stop()
    container.publisher().close()
    for emulator in emulators:
        emulator.stop()
    outcome = result[0] if result else None
    published = sum(_totals(registry, "connector_events_published_total", "collection").values())
    rejected = {k: int(v) for k, v in _totals(registry, "connector_events_rejected_total", "reason").items()}
    print(
        f"\n\nsummary: {outcome.events if outcome else 0} events read, {published:.0f} published, "
        f"rejected {rejected}, "
        f"stopped: {outcome.reason.value if outcome else 'unknown'}"
        + (f", last checkpoint {outcome.checkpoint.data[:24]}…" if outcome and outcome.checkpoint else "")
    )


if __name__ == "__main__":
    main()
