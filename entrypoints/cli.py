"""The ``connector`` command (CONTRACT §3). Thin: parse arguments, build the container, call a use case.

Every failure is one line naming the problem and the fix; ``--verbose`` adds the traceback.
Exit codes: 0 ok, 1 the work failed, 2 usage or configuration error.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from domain.redaction import redact
from entrypoints.config import ConfigError, ConnectorConfig, load_config

F = TypeVar("F", bound=Callable[..., Any])


class WorkFailed(Exception):
    """The command's work failed (exit 1) for a reason the message explains."""


def _fail(code: int, message: str) -> None:
    click.echo(f"error: {redact(message)}", err=True)
    if click.get_current_context().find_root().params.get("verbose"):
        traceback.print_exc(file=sys.stderr)
    sys.exit(code)


def handle_errors(command: F) -> F:
    """Turn known failures into one clear line and the contract's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            _fail(2, str(error))
        except WorkFailed as error:
            _fail(1, str(error))
        except (OSError, ValueError) as error:
            _fail(1, f"{error}")
        return None

    return wrapper  # type: ignore[return-value]


def load(config_path: str | None) -> ConnectorConfig:
    return load_config(config_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="mongo-pubsub-connector")
def cli(verbose: bool) -> None:
    """MongoDB change streams to Google Cloud Pub/Sub.

    \b
    Example:
      connector replay events.jsonl --config config.yaml --output messages.jsonl
    """


def main() -> None:
    from entrypoints import commands  # noqa: F401  (registers the sub-commands)

    cli(prog_name="connector")
