"""``connector run``: the worker, with its HTTP probes, until the source ends or a signal arrives."""

from __future__ import annotations

import signal
import sys

import click
import structlog

from adapters.schema_files import SchemaLoadError
from application.pipeline import StopReason
from application.worker import StreamWorker
from entrypoints import launch
from entrypoints.cli import WorkFailed, cli, handle_errors, load
from entrypoints.config import ConfigError
from entrypoints.container import build_container
from entrypoints.http_server import ProbeApp, ProbeServer
from entrypoints.logging_setup import configure_logging

log = structlog.get_logger("connector.run")


@cli.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (else $CONNECTOR_CONFIG).")
@handle_errors
def run_command(config_path: str | None) -> None:
    """Stream changes to Pub/Sub and serve /health, /readiness and /metrics on $PORT (default 8080).

    SIGTERM or Ctrl-C stops reading, flushes, writes the final checkpoint and exits 0 within 10 s;
    a second one exits at once.

    \b
    Example:
      CONNECTOR_SOURCE=jsonl CONNECTOR_JSONL__PATH=events.jsonl connector run --config config.yaml
    """
    stop_requested: list[int] = []
    worker_ref: list[StreamWorker] = []

    def on_signal(signum: int) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        if stop_requested and not worker_ref:
            sys.exit(0)  # a second signal before the worker exists: nothing to drain yet
        stop_requested.append(signum)
        if worker_ref:
            worker_ref[0].request_stop()

    # A signal since process start (entrypoints/launch.py remembered it) must still mean "stop cleanly, exit 0".
    launch.listen(on_signal)
    config = load(config_path)
    configure_logging(level=config.logging.level, fmt=config.logging.format)
    container = build_container(config)
    try:
        container.processing_step()
    except SchemaLoadError as error:
        raise ConfigError(str(error)) from None
    worker = container.worker()
    worker_ref.append(worker)
    if stop_requested:
        worker.request_stop()
    server = ProbeServer(
        ProbeApp(health=container.health(), registry=container.metrics().registry),
        host=config.http.host,
        port=config.http.port,
    ).start()

    log.info(
        "connector_started",
        source=config.source,
        stream=config.mongodb.database,
        topics=[s.topic for s in config.streams],
        port=server.port,
    )
    try:
        result = worker.run()
    finally:
        container.publisher().close()
        server.stop()
    log.info("connector_stopped", reason=result.reason.value, events=result.events,
             checkpoint=None if result.checkpoint is None else result.checkpoint.data)  # fmt: skip
    if result.reason in (StopReason.FATAL, StopReason.INVALID_DOCUMENT):
        container.health().died(result.error or "worker stopped")
        hint = f"; {result.recovery}" if result.recovery else ""
        raise WorkFailed(f"{result.error}{hint}")
    sys.stdout.flush()
