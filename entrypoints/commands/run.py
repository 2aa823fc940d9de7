"""``connector run``: the worker, with its HTTP probes, until the source ends or a signal arrives."""

from __future__ import annotations

import sys

import click
import structlog

from adapters.schema_files import SchemaLoadError
from application.pipeline import RunResult, StopReason
from entrypoints.cli import WorkFailed, cli, handle_errors, load
from entrypoints.config import ConfigError
from entrypoints.container import build_container
from entrypoints.http_server import ProbeApp, ProbeServer
from entrypoints.logging_setup import configure_logging
from entrypoints.shutdown import GracefulStop

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
    stop = GracefulStop()
    stop.listen()  # a signal since process start (entrypoints/launch.py remembered it) stops cleanly, exit 0
    config = load(config_path)
    configure_logging(level=config.logging.level, fmt=config.logging.format)
    container = build_container(config)
    try:
        container.processing_step()
    except SchemaLoadError as error:
        raise ConfigError(str(error)) from None
    worker = container.worker()
    health = container.health()
    stop.attach(worker.request_stop)
    server = ProbeServer(
        ProbeApp(health=health, registry=container.metrics().registry),
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

    def work() -> RunResult:
        try:
            return worker.run()
        finally:
            container.publisher().close()  # flushes: Pub/Sub may hang here too, so it is inside the deadline

    try:
        result = stop.run(work, death=lambda: None if health.alive else health.failing.get("worker", "worker died"))
        if result.reason in (StopReason.FATAL, StopReason.INVALID_DOCUMENT):
            health.died(result.error or "worker stopped")  # /health says so while the probes still answer
    except BaseException as error:
        health.died(f"worker crashed: {type(error).__name__}: {error}")
        raise
    finally:
        server.stop()
    log.info("connector_stopped", reason=result.reason.value, events=result.events,
             checkpoint=None if result.checkpoint is None else result.checkpoint.data)  # fmt: skip
    if result.reason in (StopReason.FATAL, StopReason.INVALID_DOCUMENT):
        hint = f"; {result.recovery}" if result.recovery else ""
        if result.usage_error:
            raise ConfigError(f"{result.error}{hint}")
        raise WorkFailed(f"{result.error}{hint}")
    sys.stdout.flush()
