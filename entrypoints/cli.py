"""The ``connector`` command (CONTRACT §3). Thin: parse arguments, build the container, call a use case.

Every failure is one line naming the problem and the fix; ``--verbose`` adds the traceback.
Exit codes: 0 ok, 1 the work failed, 2 usage or configuration error.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from entrypoints.config import ConnectorConfig, load_config
from entrypoints.errors import describe, one_line

F = TypeVar("F", bound=Callable[..., Any])


class WorkFailed(Exception):
    """The command's work failed (exit 1) for a reason the message explains."""


def _fail(code: int, message: str) -> None:
    click.echo(f"error: {one_line(message)}", err=True)
    context = click.get_current_context(silent=True)
    if context is not None and context.find_root().params.get("verbose"):
        traceback.print_exc(file=sys.stderr)
    sys.exit(code)


def handle_errors(command: F) -> F:
    """Turn every failure into one clear line and the contract's exit code (see ``entrypoints.errors``).

    Click's own exceptions pass through: ``main`` prints them in the same ``error:`` form."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except (Exception, KeyboardInterrupt) as error:
            _fail(*describe(error))
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


def load_env_file(directory: Path | None = None) -> None:
    """``.env`` in the working directory, as ``cp .env.example .env`` promises; real variables win."""
    path = (directory or Path.cwd()) / ".env"
    if path.is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def main() -> None:
    try:
        from entrypoints import commands  # noqa: F401  (registers the sub-commands)

        load_env_file()
        outcome = cli.main(prog_name="connector", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        error.show()  # a bare `connector`: the help text, as click prints it
        sys.exit(error.exit_code)
    except click.ClickException as error:  # usage errors: one line in the same form as every other error
        where = f" (see `{error.ctx.command_path} --help`)" if isinstance(error, click.UsageError) and error.ctx else ""
        click.echo(f"error: {one_line(error.format_message())}{where}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except (Exception, KeyboardInterrupt) as error:  # outside any command: reading .env, parsing arguments
        code, message = describe(error)
        click.echo(f"error: {message}", err=True)
        sys.exit(code)
    sys.exit(outcome if isinstance(outcome, int) else 0)
