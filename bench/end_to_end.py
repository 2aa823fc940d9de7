"""End to end against the Pub/Sub emulator: ``connector run`` beside raw client-library loops, per mode.

For each mode the same events go through (a) ``connector run`` with ``source: jsonl`` and Firestore
checkpoints, timed from process start to exit, and (b) raw ``PublisherClient.publish()`` loops over
the same message bytes and attributes (``connector replay``'s output, pre-encoded), timed from the
first publish to the last acknowledgement, in the same run: ``no_ordering`` (no ordering at all: what
``bucketed`` is compared with), ``same_keys`` (ordering on, the connector's keys: ``document``'s
yardstick) and, for ``none``, the unordered loop. Also: peak RSS per mode, publish latency over time
at half the maximum rate, and RSS over time while the emulator is SIGSTOPped.
Results go to ``bench/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters import gcp_emulators
from adapters.pubsub_admin import ensure_topics

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "bench-project"
CONNECTOR = [sys.executable, "-m", "entrypoints.launch"]


@contextmanager
def emulators() -> Iterator[tuple[gcp_emulators.Emulator, gcp_emulators.Emulator]]:
    pubsub = gcp_emulators.start("pubsub", project=PROJECT)
    firestore = gcp_emulators.start("firestore", project=PROJECT)
    try:
        yield pubsub, firestore
    finally:
        pubsub.stop()
        firestore.stop()


@contextmanager
def workspace(count: int) -> Iterator[tuple[Path, dict[str, str], Path, gcp_emulators.Emulator]]:
    """Both emulators, a temporary directory, and ``count`` simulated events in it as JSONL."""
    with tempfile.TemporaryDirectory() as tmp, emulators() as (pubsub, firestore):
        directory = Path(tmp)
        os.environ.update({**pubsub.env, **firestore.env})
        env = {**os.environ, "PORT": "0"}
        events = directory / "events.jsonl"
        events.write_bytes(subprocess.run([*CONNECTOR, "simulate", "--count", str(count), "--seed", "7"],
                                          capture_output=True, check=True).stdout)  # fmt: skip
        yield directory, env, events, pubsub


def write_config(directory: Path, *, mode: str, events: Path, tag: str, validate: bool, latency_ms: int,
                 buckets: int, extra: str = "") -> Path:  # fmt: skip
    inventory_type = "document_type: inventory, " if validate else ""
    transaction_type = "document_type: transaction, " if validate else ""
    config = directory / f"config-{tag}.yaml"
    config.write_text(
        f"""
source: jsonl
jsonl: {{path: {events}}}
streams:
  - {{collection: inventory, {inventory_type}topic: inventory-{tag}}}
  - {{collection: transactions, {transaction_type}topic: transactions-{tag}}}
pubsub: {{project_id: {PROJECT}, ordering: {mode}, ordering_buckets: {buckets}, batch_max_latency_ms: {latency_ms}}}
token_store: {{collection: tokens_{tag}}}
logging: {{level: INFO}}
{extra}
"""
    )
    return config


def rss_sampler(pid: int, samples: list[float], stop: threading.Event) -> None:
    while not stop.is_set() and rss_sampler_once(pid, samples):
        stop.wait(0.2)


READING = ("resuming", "starting_now", "starting_at_stored_time", "starting_at_time")
"""Log events of ``connector run`` logged just before it starts reading: start-up ends there."""


def _log_seconds(line: dict[str, Any], since_epoch: float) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp() - since_epoch


def run_connector(config: Path, env: dict[str, str]) -> dict[str, Any]:
    """Seconds from process start to exit (the headline), and within them: ``startup_s`` until the
    worker starts reading (imports, clients, lease) and ``streaming_s`` from then to the pipeline's
    end, both from the log lines' wall-clock timestamps."""
    started, started_epoch = time.monotonic(), time.time()
    process = subprocess.Popen([*CONNECTOR, "run", "--config", str(config)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
    samples: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=rss_sampler, args=(process.pid, samples, stop), daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    stop.set()
    if process.returncode != 0:
        raise RuntimeError(f"connector run failed: {stderr.decode()[-2000:]}")
    lines = [orjson.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]
    stopped = [line for line in lines if line.get("event") == "pipeline_stopped"]
    reading = [_log_seconds(line, started_epoch) for line in lines if line.get("event") in READING]
    startup = reading[0] if reading else None
    streaming = _log_seconds(stopped[-1], started_epoch) - startup if stopped and startup is not None else None
    return {"seconds": seconds, "peak_rss_mb": max(samples, default=0.0), "stopped": stopped[-1] if stopped else None,
            "startup_s": startup, "streaming_s": streaming}  # fmt: skip


def raw_loop(messages: list[dict[str, Any]], *, ordered: bool, latency_ms: int, env: dict[str, str]) -> float:
    """The client library publishing pre-encoded messages as fast as it accepts them; seconds taken.
    ``ordered``: message ordering on, with the connector's keys; else no ordering keys at all."""
    os.environ.update(env)
    from concurrent.futures import wait

    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

    client = pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(max_bytes=9_500_000, max_latency=latency_ms / 1000, max_messages=1000),
        publisher_options=PublisherOptions(enable_message_ordering=ordered),
    )
    paths: dict[str, str] = {}
    prepared = []
    for message in messages:
        topic = message["topic"]
        path = paths.setdefault(topic, client.topic_path(PROJECT, topic))
        key = message["ordering_key"] if ordered else ""
        prepared.append((path, orjson.dumps(message["data"]), key, message["attributes"]))
    started = time.monotonic()
    futures = [client.publish(path, data, ordering_key=key, **attributes) for path, data, key, attributes in prepared]
    wait(futures)
    seconds = time.monotonic() - started
    client.stop()
    return seconds


def replay_messages(config: Path, events: Path, env: dict[str, str], tag: str) -> list[dict[str, Any]]:
    result = subprocess.run([*CONNECTOR, "replay", str(events), "--config", str(config)], env=env,
                            capture_output=True, check=True)  # fmt: skip
    messages = [orjson.loads(line) for line in result.stdout.splitlines()]
    for message in messages:  # the raw loop publishes to its own topics
        message["topic"] = message["topic"].replace(f"-{tag}", f"-raw{tag}")
    return messages


def checkpoint_writes(stopped: dict[str, Any] | None, seconds: float, interval_ms: int) -> dict[str, float]:
    return {"interval_ms": interval_ms, "max_allowed_per_s": 1000 / interval_ms, "seconds": seconds}


def stall_test(directory: Path, pubsub: gcp_emulators.Emulator, env: dict[str, str], *, seconds: int) -> list[dict]:
    """The simulated source keeps producing while the emulator is SIGSTOPped: RSS must plateau."""
    config = directory / "config-stall.yaml"
    config.write_text(
        f"""
source: simulated
simulated: {{rate: 0, start_time: now}}
streams:
  - {{collection: inventory, document_type: inventory, topic: inventory-stall}}
  - {{collection: transactions, document_type: transaction, topic: transactions-stall}}
pubsub: {{project_id: {PROJECT}, max_in_flight_messages: 10000}}
token_store: {{collection: tokens_stall}}
logging: {{level: ERROR}}
"""
    )
    ensure_topics(PROJECT, ["inventory-stall", "transactions-stall"])
    process = subprocess.Popen([*CONNECTOR, "run", "--config", str(config)], env={**env, "PORT": "0"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    series: list[dict] = []
    stalled = threading.Event()
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        values: list[float] = []
        while not stop.is_set():
            values.clear()
            rss_sampler_once(process.pid, values)
            if values:
                series.append({"t_s": round(time.monotonic() - started, 1), "rss_mb": round(values[0], 1),
                               "stalled": stalled.is_set()})  # fmt: skip
            stop.wait(0.5)

    threading.Thread(target=sample, daemon=True).start()
    try:
        time.sleep(10)  # full rate first
        pubsub.pause()
        stalled.set()
        time.sleep(seconds)
        pubsub.resume()
        stalled.clear()
        time.sleep(5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        stop.set()
    return series


def rss_sampler_once(pid: int, samples: list[float]) -> bool:
    """Append the process's RSS in MB; False once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    samples.append(int(line.split()[1]) / 1024)
    except OSError:
        return False
    return True


def latency_test(rate: float, seconds: float) -> list[dict[str, float]]:
    """In-process, ``source: simulated`` paced at ``rate``: read-to-acknowledgement latency per event.

    The simulator emits each event when the pipeline reads it (its cluster time is that second), so
    read→ack is the event's latency through the connector; cluster time itself has one-second precision.
    """
    from adapters.firestore_token_store import FirestoreTokenStore
    from adapters.memory.metrics import RecordingMetrics
    from adapters.pubsub_publisher import PubSubPublisher
    from adapters.schema_files import load_registry
    from adapters.simulated_source import SimulatedSource
    from adapters.simulator import WorkloadSpec
    from adapters.system_clock import SystemClock
    from application.pipeline import Pipeline, PipelineSettings
    from application.ports import StartPosition
    from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
    from entrypoints.logging_setup import configure_logging

    configure_logging(level="ERROR")
    ensure_topics(PROJECT, ["inventory-latency", "transactions-latency"])
    registry, migrator = load_registry()
    routes = {
        "inventory": StreamRoute("inventory", "inventory-latency", "inventory"),
        "transactions": StreamRoute("transactions", "transactions-latency", "transaction"),
    }
    clock = SystemClock()
    started = time.monotonic()
    timed: list[tuple[float, float]] = []

    class TimedMetrics(RecordingMetrics):  # type: ignore[misc]
        def events_published(self, *, collection: str, operation: str, count: int, latency_seconds: float) -> None:
            timed.extend([(time.monotonic() - started, latency_seconds)] * count)

    metrics = TimedMetrics()
    source = SimulatedSource(WorkloadSpec(start_seconds=int(time.time()), events_per_second=max(1, int(rate))),
                             rate=rate, wait=clock.wait_until, monotonic=clock.monotonic)  # fmt: skip
    publisher = PubSubPublisher(project_id=PROJECT)
    pipeline = Pipeline(
        source=source,
        step=ProcessingStep(
            settings=ProcessingSettings(routes=routes, database="warehouse"), registry=registry, migrator=migrator
        ),
        publisher=publisher,
        token_store=FirestoreTokenStore(project_id=PROJECT, collection="tokens_latency"),
        clock=clock,
        metrics=metrics,
        settings=PipelineSettings(stream_id="latency"),
    )
    clock.call_later(seconds, pipeline.request_stop)
    pipeline.run(StartPosition())
    publisher.close()
    series = []
    for second in range(int(seconds) + 1):
        window = sorted(latency for at, latency in timed if second <= at < second + 1)
        if window:
            p99 = window[min(len(window) - 1, int(0.99 * len(window)))]
            series.append({"t_s": float(second), "p50_ms": round(window[len(window) // 2] * 1000, 1),
                           "p99_ms": round(p99 * 1000, 1)})  # fmt: skip
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--modes", default="bucketed,document,none,bucketed-novalidation")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--stall-seconds", type=int, default=30)
    parser.add_argument("--latency-seconds", type=int, default=20)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    with workspace(args.events) as (directory, env, events, pubsub):
        # Warm the emulator's JVM first, or whichever mode runs first pays for it.
        warm = write_config(directory, mode="bucketed", events=events, tag="warm", validate=True,
                            latency_ms=args.latency_ms, buckets=args.buckets)  # fmt: skip
        ensure_topics(PROJECT, ["inventory-warm", "transactions-warm", "inventory-rawwarm", "transactions-rawwarm"])
        raw_loop(replay_messages(warm, events, env, "warm")[:30_000], ordered=True, latency_ms=args.latency_ms, env=env)
        for index, name in enumerate(args.modes.split(",")):
            mode, _, variant = name.partition("-")
            tag = f"m{index}"
            config = write_config(directory, mode=mode, events=events, tag=tag, validate=variant != "novalidation",
                                  latency_ms=args.latency_ms, buckets=args.buckets)  # fmt: skip
            topics = [f"inventory-{tag}", f"transactions-{tag}", f"inventory-raw{tag}", f"transactions-raw{tag}"]
            ensure_topics(PROJECT, topics)
            messages = replay_messages(config, events, env, tag)
            raw_seconds = {"no_ordering": raw_loop(messages, ordered=False, latency_ms=args.latency_ms, env=env)}
            if mode != "none":
                raw_seconds["same_keys"] = raw_loop(messages, ordered=True, latency_ms=args.latency_ms, env=env)
            against = {"bucketed": "no_ordering", "document": "same_keys", "none": "no_ordering"}[mode]
            connector = run_connector(config, env)
            stopped = connector["stopped"] or {}
            streaming = connector["streaming_s"]
            rows.append({
                "mode": name,
                "connector_events_per_s": round(args.events / connector["seconds"], 1),
                "raw_loops": {loop: round(len(messages) / sec, 1) for loop, sec in raw_seconds.items()},
                "ratio": round(raw_seconds[against] / connector["seconds"], 3),
                "ratio_against": against,
                # Within the headline: start-up (to the first read), and the streaming part's rate and ratio.
                "startup_s": round(connector["startup_s"], 2) if streaming else None,
                "streaming_events_per_s": round(args.events / streaming, 1) if streaming else None,
                "streaming_ratio": round(raw_seconds[against] / streaming, 3) if streaming else None,
                "peak_rss_mb": round(connector["peak_rss_mb"], 1),
                "events": args.events,
                "messages": len(messages),
                "checkpoints": stopped.get("checkpoints"),
            })  # fmt: skip
            print(rows[-1], flush=True)
        stall = stall_test(directory, pubsub, env, seconds=args.stall_seconds) if args.stall_seconds else []
        print("stall", max((p["rss_mb"] for p in stall if p["stalled"]), default=None), flush=True)
        latency: list[dict[str, float]] = []
        if args.latency_seconds and rows:
            half = max(rows, key=lambda row: row["connector_events_per_s"])["connector_events_per_s"] / 2
            latency = latency_test(half, args.latency_seconds)
            print("latency p99 max", max((p["p99_ms"] for p in latency), default=None), flush=True)
    out = RESULTS / "end_to_end.json"
    out.write_text(json.dumps({"python": platform.python_version(), "measured_at": datetime.now(UTC).isoformat(
        timespec="seconds"), "events": args.events, "batch_max_latency_ms": args.latency_ms,
        "ordering_buckets": args.buckets, "modes": rows, "latency_series": latency, "stall_rss_series": stall},
        indent=2))  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
