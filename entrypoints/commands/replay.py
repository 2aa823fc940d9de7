"""``connector replay``: the dry run. Output appears whole or not at all."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

import click

from adapters.jsonl_events import read_jsonl_events
from adapters.jsonl_sink import JsonlMessageSink
from application.event_flow import EventInputError, whole_events
from application.replay import InvalidDocumentStop, replay
from entrypoints.cli import WorkFailed, cli, handle_errors, load
from entrypoints.container import build_container
from entrypoints.logging_setup import configure_logging


@cli.command("replay")
@click.argument("events", type=click.Path(dir_okay=False, allow_dash=True, exists=True, readable=True))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (else $CONNECTOR_CONFIG).")
@click.option(
    "--output", type=click.Path(dir_okay=False, allow_dash=True), help="Write messages here (default stdout)."
)
@handle_errors
def replay_command(events: str, config_path: str | None, output: str | None) -> None:
    """Run change events (JSONL, - for stdin) through the pipeline and print the messages it would publish.

    Nothing is published and no checkpoint is written. Logs go to stderr.

    \b
    Example:
      connector simulate --count 1000 | connector replay - --output messages.jsonl
    """
    config = load(config_path)
    configure_logging(level=config.logging.level, fmt=config.logging.format, stream=sys.stderr)
    container = build_container(config)
    step = container.processing_step()
    source: BinaryIO = sys.stdin.buffer if events == "-" else open(events, "rb")  # noqa: SIM115
    name = "stdin" if events == "-" else events
    with source, tempfile.TemporaryFile() as buffer:
        try:
            summary = replay(
                events=whole_events(read_jsonl_events(source, name=name)),
                step=step,
                sink=JsonlMessageSink(buffer),
                fail_on_invalid=config.schemas.on_invalid == "fail",
            )
        except EventInputError as error:
            raise WorkFailed(f"{error}; nothing was written") from None
        except InvalidDocumentStop as error:
            raise WorkFailed(f"{error}; nothing was written") from None
        buffer.seek(0)
        _publish_output(buffer, output)
    rejected = sum(summary.rejected.values())
    click.echo(
        f"replayed {summary.events} events: {summary.published} published ({summary.messages} messages), "
        f"{rejected} rejected {dict(summary.rejected)}, {sum(summary.skipped.values())} skipped",
        err=True,
    )


def _publish_output(buffer: BinaryIO, output: str | None) -> None:
    if output is None or output == "-":
        shutil.copyfileobj(buffer, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    with open(partial, "wb") as out:
        shutil.copyfileobj(buffer, out)
    partial.replace(target)
