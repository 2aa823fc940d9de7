"""``make run``: the connector on its embedded default, with live progress and a summary on Ctrl-C.

Starts the Pub/Sub and Firestore emulators when gcloud has them (else uses the in-memory ones and
says so), creates the topics and a subscription per topic, and runs ``source: simulated``.

Ctrl-C at any moment ends it without a traceback and with both emulators stopped: while the worker
runs it drains and prints a summary; before that the signal only sets a flag, checked between the
steps of start-up and while an emulator starts (an exception raised inside ``Popen`` could orphan
one), and start-up stops there. Any other failure, a busy port included, is one ``error:`` line
with the fix.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any

from adapters import gcp_emulators
from adapters.simulator import WorkloadSpec
from entrypoints.config import load_config
from entrypoints.container import build_container
from entrypoints.errors import INTERRUPTED, describe
from entrypoints.http_server import PortUnavailable, ProbeApp, ProbeServer
from entrypoints.logging_setup import configure_logging

PROJECT = "local-project"


def _emulators(started: list[gcp_emulators.Emulator], stop: threading.Event) -> None:
    """Start both emulators into ``started`` (so whatever started is stopped, however this ends)."""
    if os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return  # the user runs their own
    print("starting the Pub/Sub and Firestore emulators…", flush=True)
    try:
        for kind in ("pubsub", "firestore"):
            emulator = gcp_emulators.start(kind, project=PROJECT, cancelled=stop.is_set)  # type: ignore[arg-type]
            started.append(emulator)
            os.environ.update(emulator.env)
    except gcp_emulators.StartCancelled:
        raise KeyboardInterrupt from None
    except gcp_emulators.EmulatorUnavailable:
        _stop(started)
        raise


def _unless_stopped(stop: threading.Event) -> None:
    if stop.is_set():
        raise KeyboardInterrupt


def _stop(emulators: list[gcp_emulators.Emulator]) -> None:
    while emulators:
        emulators.pop().stop()


def _ignore_signals() -> None:
    """Cleanup must finish: a second Ctrl-C may not interrupt stopping the emulators."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _port_free(port: int) -> None:
    """Fail before the emulators start (seconds) when the probe port is taken."""
    if port == 0:
        return
    try:
        with socket.create_server(("0.0.0.0", port)):
            pass
    except OSError as error:
        raise PortUnavailable(
            f"port {port} is busy ({os.strerror(error.errno or 0)}): run `PORT={port + 1} make run`, "
            "or stop what listens there"
        ) from None


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
    code = 0
    stop = threading.Event()

    def remember(_: int, __: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, remember)  # until the worker runs; then it drains instead
    signal.signal(signal.SIGTERM, remember)
    try:
        _run(emulators, stop)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException as error:  # KeyboardInterrupt included: Ctrl-C before the worker ran
        _ignore_signals()
        code, line = describe(error)
        print("\nstopped" if code == INTERRUPTED else f"error: {line}", file=sys.stderr, flush=True)
    finally:
        _ignore_signals()
        if emulators:
            _stop(emulators)
            print("emulators stopped", flush=True)
    sys.exit(code)


def _run(emulators: list[gcp_emulators.Emulator], stop: threading.Event) -> None:
    overrides = {
        "CONNECTOR_SOURCE": "simulated",
        "CONNECTOR_SIMULATED__RATE": os.environ.get("RATE", "500"),
        "CONNECTOR_SIMULATED__START_TIME": "now",
        "CONNECTOR_LOGGING__LEVEL": "ERROR",
        "CONNECTOR_LOGGING__FORMAT": "console",
        "CONNECTOR_PUBSUB__PROJECT_ID": PROJECT,
    }
    _port_free(load_config().http.port)
    try:
        _emulators(emulators, stop)
        hosts = os.environ["PUBSUB_EMULATOR_HOST"], os.environ["FIRESTORE_EMULATOR_HOST"]
        print(f"emulators: Pub/Sub {hosts[0]}, Firestore {hosts[1]}", flush=True)
    except gcp_emulators.EmulatorUnavailable as error:
        print(f"NOTICE: {error}; running with in-memory Pub/Sub and token store instead")
        overrides.update(CONNECTOR_PUBSUB__BACKEND="memory", CONNECTOR_TOKEN_STORE__BACKEND="memory")
    _unless_stopped(stop)
    os.environ.update({k: v for k, v in overrides.items() if k not in os.environ})
    config = load_config()
    configure_logging(level=config.logging.level, fmt=config.logging.format, stream=sys.stderr)
    if config.pubsub.backend == "pubsub":
        from adapters.pubsub_admin import ensure_subscription, ensure_topics

        timeout_s = config.pubsub.admin_timeout_s
        ensure_topics(config.pubsub.project_id, [s.topic for s in config.streams], timeout_s=timeout_s)
        for stream in config.streams:
            subscription = f"{stream.topic}-make-run"
            ensure_subscription(config.pubsub.project_id, stream.topic, subscription, timeout_s=timeout_s)
        print(f"topics: {', '.join(s.topic for s in config.streams)} (subscriptions <topic>-make-run)")
    _unless_stopped(stop)
    container = build_container(config)
    worker = container.worker()

    def on_signal(_: int, __: FrameType | None) -> None:
        worker.request_stop()

    signal.signal(signal.SIGINT, on_signal)  # from here on Ctrl-C drains and prints the summary
    signal.signal(signal.SIGTERM, on_signal)
    if stop.is_set():  # it came while the handlers changed hands
        worker.request_stop()
    registry = container.metrics().registry
    server = ProbeServer(ProbeApp(health=container.health(), registry=registry), port=config.http.port).start()
    print(f"probes: http://localhost:{server.port}/health /readiness /metrics  —  Ctrl-C to stop")
    if config.source == "simulated":
        print(
            f"note: about {WorkloadSpec().invalid_rate:.0%} of the simulated documents are invalid on purpose, to show "
            "how rejections look: they are the 'rejected' count below, not a fault\n",
            flush=True,
        )

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
