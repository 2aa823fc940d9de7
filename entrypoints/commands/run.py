"""``connector run``: the worker, with its HTTP probes, until the source ends or a signal arrives."""

from __future__ import annotations

import signal
import sys

import click
import structlog

from adapters.schema_files import SchemaLoadError
from application.pipeline import RunResult, StopReason
from entrypoints import launch
from entrypoints.cli import WorkFailed, cli, handle_errors, load
from entrypoints.config import ConfigError
from entrypoints.container import build_container
from entrypoints.http_server import ProbeApp, ProbeServer
from entrypoints.logging_setup import configure_logging
from entrypoints.shutdown import GracefulStop
from entrypoints.supervisor import Supervisor, usable_cpus

log = structlog.get_logger("connector.run")


@cli.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (else $CONNECTOR_CONFIG).")
@click.option("--workers", default="1", show_default=True,
              help="Worker processes under one supervisor; 'auto': the CPUs this container may use.")  # fmt: skip
@handle_errors
def run_command(config_path: str | None, workers: str) -> None:
    """Stream changes to Pub/Sub and serve /health, /readiness and /metrics on $PORT (default 8080).

    SIGTERM or Ctrl-C stops reading, flushes, writes the final checkpoint and exits 0 within 10 s;
    a second one exits at once.

    \b
    Example:
      CONNECTOR_SOURCE=jsonl CONNECTOR_JSONL__PATH=events.jsonl connector run --config config.yaml
    """
    count = usable_cpus() if workers == "auto" else _count(workers)
    if count > 1:
        _supervise(config_path, count)
        return
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


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--workers: {text!r} is not a positive number or auto; e.g. --workers 2")
    return int(text)


def _supervise(config_path: str | None, count: int) -> None:
    """Several worker processes; the supervisor serves the probes for all (entrypoints/supervisor.py)."""
    pending: list[int] = []
    supervisor_ref: list[Supervisor] = []

    def on_signal(signum: int) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        if supervisor_ref:
            supervisor_ref[0].request_stop(signum)
        else:
            pending.append(signum)

    launch.listen(on_signal)
    config = load(config_path)
    configure_logging(level=config.logging.level, fmt=config.logging.format)
    supervisor = Supervisor(workers=count, args=["--config", config_path] if config_path else [],
                            host=config.http.host, port=config.http.port)  # fmt: skip
    supervisor_ref.append(supervisor)
    for signum in pending:
        supervisor.request_stop(signum)
    log.info("supervisor_started", workers=count, port=supervisor.port)
    code = supervisor.run()
    log.info("supervisor_stopped", code=code)
    if code:
        raise WorkFailed("a worker did not stop cleanly; see its lines above")
