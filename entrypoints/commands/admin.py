"""``connector admin tokens …`` and ``connector admin schemas …``: operator tools, thin over the ports."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from adapters.schema_files import SchemaLoadError
from application.ports import Checkpoint
from domain.change_event import ClusterTime, ResumeToken
from domain.event_codec import EventDecodeError, decode_event_line
from domain.json_types import JsonObject
from domain.migration import MigrationError
from domain.schema_registry import SchemaRegistry, UnknownSchemaError
from entrypoints.cli import WorkFailed, cli, handle_errors, load
from entrypoints.config import ConfigError
from entrypoints.container import Container, build_container
from entrypoints.library import InvalidDocument, Toolkit

CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (else $CONNECTOR_CONFIG)."
)


def _container(config_path: str | None) -> Container:
    return build_container(load(config_path))


@cli.group("admin")
def admin() -> None:
    """Inspect and move resume positions; work with the schema registry offline.

    \b
    Examples:
      connector admin tokens list --config config.yaml
      connector admin schemas validate inventory doc.json
    """


# ---------------------------------------------------------------- tokens


@admin.group("tokens")
def tokens() -> None:
    """Resume positions, one per stream (the database name).

    \b
    Example:
      connector admin tokens set warehouse --at 2024-03-20T10:00:00Z
    """


def _describe(stream: str, checkpoint: Checkpoint) -> dict[str, Any]:
    cluster = checkpoint.cluster_time
    at = None if cluster is None else datetime.fromtimestamp(cluster.seconds, tz=UTC)
    return {
        "stream": stream,
        "token": None if checkpoint.token is None else checkpoint.token.to_json(),
        "cluster_time": None if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "age_seconds": None if at is None else round((datetime.now(UTC) - at).total_seconds(), 1),
        "updated_at": None if checkpoint.updated_at is None else checkpoint.updated_at.isoformat(),
        "generation": checkpoint.generation,
    }


def human_age(seconds: float) -> str:
    """``42s``, ``12m 5s``, ``23h 41m``, ``3d 4h``, ``986d``: two units at most, the larger first."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days >= 10:
        return f"{days}d"
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@tokens.command("list")
@CONFIG_OPTION
@handle_errors
def tokens_list(config_path: str | None) -> None:
    """Every stream with its token, cluster time and age.

    \b
    Example:
      connector admin tokens list --config config.yaml
    """
    stored = _container(config_path).token_store().list()
    if not stored:
        click.echo("no checkpoints stored yet")
        return
    click.echo(f"{'stream':<20} {'cluster time':<22} {'age':>10}  token")
    for stream, checkpoint in stored:
        row = _describe(stream, checkpoint)
        token = "(time only)" if checkpoint.token is None else checkpoint.token.data
        age = "-" if row["age_seconds"] is None else human_age(row["age_seconds"])
        click.echo(f"{stream:<20} {row['cluster_time'] or '-':<22} {age:>10}  {token[:60]}")


@tokens.command("get")
@click.argument("stream")
@CONFIG_OPTION
@handle_errors
def tokens_get(stream: str, config_path: str | None) -> None:
    """Print one stream's position as JSON (exit 1 if none is stored).

    \b
    Example:
      connector admin tokens get warehouse
    """
    checkpoint = _container(config_path).token_store().load(stream)
    if checkpoint is None:
        raise WorkFailed(f"no checkpoint stored for stream {stream!r}; `connector admin tokens list` shows them")
    click.echo(orjson.dumps(_describe(stream, checkpoint), option=orjson.OPT_INDENT_2).decode())


def _parse_token(text: str) -> ResumeToken:
    if text.lstrip().startswith("{"):
        try:
            return ResumeToken.from_json(decode_event_line(text))
        except (EventDecodeError, ValueError) as error:
            raise click.UsageError(f"--token: {error}; pass the _data hex or the whole _id as JSON") from None
    if not text or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise click.UsageError("--token must be the token's _data (hex) or its whole _id as JSON")
    return ResumeToken(data=text.upper())


def _parse_time(text: str) -> ClusterTime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.UsageError(f"--at {text!r} is not an RFC 3339 time; e.g. 2024-03-20T10:00:00Z") from None
    if moment.tzinfo is None:
        raise click.UsageError(f"--at {text!r} needs a time zone, e.g. a trailing Z")
    return ClusterTime(seconds=int(moment.timestamp()), increment=0)


@tokens.command("set")
@click.argument("stream")
@click.option("--token", "token_text", help="The token's _data (hex), or its whole _id as JSON.")
@click.option("--at", "at_text", help="Start from this RFC 3339 time instead (must be inside the oplog window).")
@CONFIG_OPTION
@handle_errors
def tokens_set(stream: str, token_text: str | None, at_text: str | None, config_path: str | None) -> None:
    """Move a stream's position, forwards or backwards. A running worker is fenced out (it stops);
    the next start resumes from here.

    \b
    Examples:
      connector admin tokens set warehouse --at 2024-03-20T10:00:00Z
      connector admin tokens set warehouse --token 8265FAB3A3000000022B04...
    """
    if (token_text is None) == (at_text is None):
        raise click.UsageError("give exactly one of --token or --at")
    if token_text is not None:
        checkpoint = Checkpoint(token=_parse_token(token_text), cluster_time=None, updated_at=datetime.now(UTC))
    else:
        checkpoint = Checkpoint(token=None, cluster_time=_parse_time(str(at_text)), updated_at=datetime.now(UTC))
    _container(config_path).token_store().set_position(stream, checkpoint)
    click.echo(f"stream {stream}: position set; restart the connector to resume from it")


@tokens.command("reset")
@click.argument("stream")
@click.option("--yes", is_flag=True, help="Really forget the position.")
@CONFIG_OPTION
@handle_errors
def tokens_reset(stream: str, yes: bool, config_path: str | None) -> None:
    """Forget a stream's position: the next start begins at mongodb.start_at (default: now).

    \b
    Example:
      connector admin tokens reset warehouse --yes
    """
    if not yes:
        raise click.UsageError("this forgets the resume position; add --yes to confirm")
    _container(config_path).token_store().delete(stream)
    click.echo(f"stream {stream}: position forgotten")


# ---------------------------------------------------------------- schemas


@admin.group("schemas")
def schemas() -> None:
    """The schema registry (built-in schemas plus schemas.directory), offline.

    \b
    Example:
      connector admin schemas validate inventory doc.json
    """


def _registry(config_path: str | None) -> tuple[SchemaRegistry, Any]:
    container = _container(config_path)
    try:
        pair: tuple[SchemaRegistry, Any] = container.schemas()
    except SchemaLoadError as error:
        raise ConfigError(str(error)) from None
    return pair


def _require(registry: SchemaRegistry, document_type: str, *versions: str | None) -> None:
    """Unknown type or version: a usage error naming it, before any document is read."""
    for version in versions:
        if version is not None:
            registry.schema(document_type, version)  # raises UnknownSchemaError("unknown type/version: …")
    registry.versions(document_type)


def _documents(path: str) -> list[JsonObject]:
    """One document (JSON or Extended JSON, possibly pretty-printed) or JSONL, in the JSON form."""
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        return [decode_event_line(raw)]
    except EventDecodeError:
        pass
    documents = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if line.strip():
            try:
                documents.append(decode_event_line(line))
            except EventDecodeError as error:
                raise WorkFailed(f"{path}:{number}: {error}") from None
    return documents


@schemas.command("list")
@CONFIG_OPTION
@handle_errors
def schemas_list(config_path: str | None) -> None:
    """Document types, their versions (newest last) and registered migrations.

    \b
    Example:
      connector admin schemas list --config config.yaml
    """
    registry, migrator = _registry(config_path)
    for document_type in registry.types():
        edges = sorted(f"{s}->{t}" for d, s, t in migrator.edges() if d == document_type)
        click.echo(
            f"{document_type}: {', '.join(registry.versions(document_type))}"
            f"  (migrations: {', '.join(edges) or 'none'})"
        )


@schemas.command("show")
@click.argument("document_type")
@click.argument("version", required=False)
@CONFIG_OPTION
@handle_errors
def schemas_show(document_type: str, version: str | None, config_path: str | None) -> None:
    """Print a schema (the newest version unless VERSION is given).

    \b
    Example:
      connector admin schemas show inventory v1
    """
    registry, _ = _registry(config_path)
    schema = registry.schema(document_type, version or registry.newest(document_type))
    click.echo(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode())


@schemas.command("validate")
@click.argument("document_type")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, exists=True, readable=True))
@click.option("--version", "version", help="Validate against this version (default: the document's own).")
@CONFIG_OPTION
@handle_errors
def schemas_validate(document_type: str, file: str, version: str | None, config_path: str | None) -> None:
    """Validate documents; print every error with its JSON path; exit 1 if any is invalid.

    \b
    Example:
      connector admin schemas validate inventory exported.jsonl
    """
    kit = Toolkit(*_registry(config_path))
    _require(kit.registry, document_type, version)
    invalid = 0
    documents = _documents(file)
    for number, document in enumerate(documents, start=1):
        target = version or kit.detect_version(document_type, document)
        if target is None:
            invalid += 1
            if "_schema_version" in document:  # declared, but not a registered version: the connector's words
                try:
                    kit.migrate(document_type, document)
                except InvalidDocument as error:
                    click.echo(f"#{number}: {error}")
                continue
            click.echo(f"#{number}: no {document_type} version matches (schema_undetected); as each version:")
            for line in _undetected(kit.registry, document_type, document):
                click.echo(f"#{number} {line}")
            continue
        try:
            # read an unversioned document as the version it was detected as, exactly as the connector does
            subject = document if "_schema_version" in document else {**document, "_schema_version": target}
            violations = kit.validate(document_type, subject, target)
        except UnknownSchemaError as error:
            invalid += 1
            click.echo(f"#{number}: {error}")
            continue
        if violations:
            invalid += 1
            for violation in violations:
                click.echo(f"#{number} ({target}) {violation.path or '(root)'}: {violation.message}")
    click.echo(f"{len(documents) - invalid} valid, {invalid} invalid", err=True)
    if invalid:
        sys.exit(1)


def _undetected(registry: SchemaRegistry, document_type: str, document: JsonObject) -> list[str]:
    """Why an unversioned document matches no version: each version's errors, newest first, with paths
    (detection reads the document as each version in turn, so the errors are those of that reading)."""
    lines = []
    for version in reversed(registry.versions(document_type)):
        probe = {**document, "_schema_version": version}
        for violation in registry.validate(document_type=document_type, version=version, document=probe):
            lines.append(f"({version}) {violation.path or '(root)'}: {violation.message}")
    return lines


@schemas.command("migrate")
@click.argument("document_type")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, exists=True, readable=True))
@click.option("--to", "target", help="Target version (default: the newest).")
@CONFIG_OPTION
@handle_errors
def schemas_migrate(document_type: str, file: str, target: str | None, config_path: str | None) -> None:
    """Migrate documents to a version and print them as JSONL (exit 1 if one cannot be).

    \b
    Example:
      connector admin schemas migrate inventory old.jsonl --to v2 > new.jsonl
    """
    kit = Toolkit(*_registry(config_path))
    _require(kit.registry, document_type, target)
    failed = 0
    for number, document in enumerate(_documents(file), start=1):
        try:
            click.echo(orjson.dumps(kit.migrate(document_type, document, to_version=target)).decode())
        except InvalidDocument as error:
            failed += 1
            details = "; ".join(f"{p.path or '(root)'}: {p.message}" for p in error.problems)
            click.echo(f"#{number}: {error}{' (' + details + ')' if details else ''}", err=True)
    if failed:
        sys.exit(1)


@schemas.command("path")
@click.argument("document_type")
@click.argument("source")
@click.argument("target")
@CONFIG_OPTION
@handle_errors
def schemas_path(document_type: str, source: str, target: str, config_path: str | None) -> None:
    """Print the migration path the connector would take.

    \b
    Example:
      connector admin schemas path inventory v1 v2
    """
    registry, migrator = _registry(config_path)
    _require(registry, document_type, source, target)
    try:
        path = migrator.find_path(document_type=document_type, from_version=source, to_version=target)
    except MigrationError as error:
        raise WorkFailed(str(error)) from None
    click.echo(" -> ".join(path))
