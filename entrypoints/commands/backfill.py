"""``connector backfill``: existing documents through the same pipeline, as ``snapshot`` events."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from adapters.snapshot_readers import (
    SnapshotReadError,
    cluster_time_now,
    count_lines,
    file_documents,
    mongo_documents,
)
from application.backfill import Backfill, BackfillFailed, BackfillReport, BackfillSettings, hand_off
from entrypoints.cli import WorkFailed, cli, handle_errors, load
from entrypoints.config import ConfigError
from entrypoints.container import build_container, mongo_client
from entrypoints.logging_setup import configure_logging


class ProgressBar:
    """count / total, rate and ETA on stderr, redrawn in place."""

    def __init__(self, total: int | None) -> None:
        self._total = total
        self._started = time.monotonic()

    def __call__(self, report: BackfillReport) -> None:
        elapsed = max(1e-9, time.monotonic() - self._started)
        rate = report.read / elapsed
        line = f"\r{report.read:>10,} read  {report.published:>10,} published  {rate:8,.0f}/s"
        if self._total:
            left = max(0, self._total - report.read)
            line += f"  {min(100.0, 100 * report.read / self._total):5.1f}%  ETA {left / rate if rate else 0:6.0f}s"
        sys.stderr.write(line)
        sys.stderr.flush()


@cli.command("backfill")
@click.option("--collection", required=True, help="A collection listed in streams.")
@click.option("--from-file", "from_file", type=click.Path(dir_okay=False, exists=True, readable=True),
              help="Read a mongoexport JSONL file instead of MongoDB.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, help="Documents per second; 0 = unlimited.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (else $CONNECTOR_CONFIG).")
@handle_errors
def backfill_command(collection: str, from_file: str | None, rate: float, config_path: str | None) -> None:
    """Publish a collection's existing documents as operation "snapshot" events; resumable.

    From MongoDB the change stream is made to cover everything from the scan's start, so nothing
    falls between snapshot and stream (a document may appear in both; keep the newer).

    \b
    Example:
      connector backfill --collection inventory --from-file inventory.jsonl --config config.yaml
    """
    config = load(config_path)
    configure_logging(level=config.logging.level, fmt=config.logging.format, stream=sys.stderr)
    if collection not in {s.collection for s in config.streams}:
        raise ConfigError(f"--collection {collection} is not in streams; add it there first")
    container = build_container(config)
    backfill = Backfill(
        step=container.processing_step(),
        publisher=container.publisher(),
        retry=container.retry(),
        token_store=container.token_store(),
        clock=container.clock(),
        metrics=container.metrics(),
        settings=BackfillSettings(
            database=config.mongodb.database,
            collection=collection,
            max_in_flight_messages=config.pubsub.max_in_flight_messages,
            batch_max_messages=config.pubsub.batch_max_messages,
            rate=rate,
        ),
    )
    after = backfill.resume_after()
    if after is not None:
        click.echo(f"resuming after _id {after}", err=True)
    client: Any = None
    try:
        if from_file:
            path = Path(from_file)
            report = backfill.run(file_documents(path, after=after), progress=ProgressBar(count_lines(path)))
            click.echo("\nfrom a file: no hand-off to the change stream (the export has no cluster time)", err=True)
        else:
            client = mongo_client(config.mongodb.uri, server_selection_ms=10_000)
            source = client[config.mongodb.database][collection]
            started = cluster_time_now(client)
            message = hand_off(store=container.token_store(), stream_id=config.mongodb.database,
                               scan_started=started, now=container.clock().now())  # fmt: skip
            click.echo(message, err=True)
            documents = mongo_documents(source, after=after, batch_size=config.mongodb.batch_size)
            report = backfill.run(documents, progress=ProgressBar(source.estimated_document_count()))
    except (SnapshotReadError, BackfillFailed) as error:
        raise WorkFailed(str(error)) from None
    finally:
        container.publisher().close()
        if client is not None:
            client.close()
    rejected = sum(report.rejected.values())
    click.echo(f"\nbackfill of {collection}: {report.read} read, {report.published} published, "
               f"{rejected} rejected {report.rejected}", err=True)  # fmt: skip
