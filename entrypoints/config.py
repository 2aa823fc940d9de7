"""Configuration (CONTRACT §4): YAML, then ``CONNECTOR_<SECTION>__<KEY>`` overrides, into frozen attrs.

Structuring is strict on purpose: an unknown key, a string where a number belongs or a value
outside its set stops start-up with the key's path and the expected form, because a connector
that silently ignores ``ordering_bukets: 64`` publishes for weeks with the wrong setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import yaml
from attrs import field, frozen, validators

from domain.partitions import MAX_PARTITIONS
from domain.redaction import redact

_positive = validators.ge(1)
_non_negative = validators.ge(0)


_BEFORE_CHANGE_MODES = ("off", "whenAvailable", "required")


def _before_change(value: object) -> str:
    # YAML 1.1 reads a bare ``off`` as False; accept it as the "off" the user meant.
    if value is False:
        return "off"
    if value not in _BEFORE_CHANGE_MODES:
        modes = ", ".join(_BEFORE_CHANGE_MODES)
        raise ValueError(f"'full_document_before_change' must be one of {modes} (quote \"off\"): {value!r}")
    return str(value)


@frozen
class MongoConfig:
    uri: str = "mongodb://localhost:27017/?replicaSet=rs0"
    database: str = "warehouse"
    full_document: Literal["default", "updateLookup", "whenAvailable", "required"] = "updateLookup"
    full_document_before_change: str = field(default="off", converter=_before_change)
    batch_size: int = field(default=1000, validator=_positive)
    max_await_time_ms: int = field(default=1000, validator=_positive)
    server_selection_timeout_ms: int = field(default=5000, validator=_positive)
    start_at: str = "resume"

    def __repr__(self) -> str:  # never show the password, even in a debugger or a traceback
        return f"MongoConfig(uri={redact(self.uri)!r}, database={self.database!r})"


@frozen
class JsonlConfig:
    path: str = "events.jsonl"
    follow: bool = False


@frozen
class SimulatedConfig:
    """The built-in workload (not in CONTRACT §4, which is silent on it): rate 0 means unthrottled."""

    seed: int = 7
    rate: float = field(default=200.0, validator=_non_negative)
    count: int | None = None
    documents: int = field(default=1000, validator=_positive)
    start_time: str | None = None  # RFC 3339 cluster time of the first event, or "now"; null = 2025-01-01


@frozen
class StreamConfig:
    collection: str
    topic: str
    document_type: str | None = None
    partitions: int = field(default=1, validator=[_positive, validators.le(MAX_PARTITIONS)])  # not in CONTRACT §4


def _default_streams() -> tuple[StreamConfig, ...]:
    return (
        StreamConfig(collection="inventory", document_type="inventory", topic="inventory-changes"),
        StreamConfig(collection="transactions", document_type="transaction", topic="transaction-changes"),
    )


def _unique_collections(_: object, __: attrs.Attribute[Any], value: tuple[StreamConfig, ...]) -> None:
    seen = [s.collection for s in value]
    duplicates = sorted({c for c in seen if seen.count(c) > 1})
    if duplicates:
        raise ValueError(f"collection listed twice: {', '.join(duplicates)}")
    if not value:
        raise ValueError("at least one stream is needed")


def _project(value: object) -> str:
    # null: "not pinned here" (load_config fills in GOOGLE_CLOUD_PROJECT first), else the emulators' project
    if value is None:
        return DEFAULT_PROJECT
    if not isinstance(value, str):
        raise ValueError(f"'project_id' must be a string or null, got {type(value).__name__}")
    return value


DEFAULT_PROJECT = "local-project"


@frozen
class PubsubConfig:
    backend: Literal["pubsub", "memory"] = "pubsub"  # memory: make run without emulators (not in CONTRACT §4)
    project_id: str = field(default=DEFAULT_PROJECT, converter=_project)
    dead_letter_topic: str | None = None
    ordering: Literal["bucketed", "document", "none"] = "bucketed"
    ordering_buckets: int = field(default=16, validator=_positive)
    batch_max_latency_ms: int = field(default=50, validator=_positive)
    batch_max_messages: int = field(default=1000, validator=[_positive, validators.le(1000)])  # not in CONTRACT §4
    max_in_flight_messages: int = field(default=10000, validator=_positive)
    admin_timeout_s: float = field(default=10.0, validator=validators.gt(0))  # topic look-ups and creation


@frozen
class TokenStoreConfig:
    backend: Literal["firestore", "memory"] = "firestore"
    project_id: str | None = None
    collection: str = "connector_resume_tokens"
    checkpoint_interval_ms: int = field(default=1000, validator=_positive)
    lease_seconds: float = field(default=30.0, validator=validators.ge(3))  # not in CONTRACT §4
    timeout_s: float = field(default=10.0, validator=validators.gt(0))  # every Firestore call, retries included


@frozen
class SchemasConfig:
    directory: str | None = None
    on_invalid: Literal["skip", "dead_letter", "fail"] = "skip"


@frozen
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = field(default=8080, validator=[_non_negative, validators.le(65535)])


@frozen
class RetryConfig:
    initial_backoff_ms: int = field(default=200, validator=_positive)
    max_backoff_ms: int = field(default=30000, validator=_positive)
    multiplier: float = field(default=2.0, validator=validators.ge(1.0))
    max_elapsed_s: float = field(default=0, validator=_non_negative)


@frozen
class LoggingConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"
    events: Literal["debug", "info"] = "debug"  # the level of the per-event line (not in CONTRACT §4)


@frozen
class ConnectorConfig:
    source: Literal["mongodb", "jsonl", "simulated"] = "mongodb"
    mongodb: MongoConfig = MongoConfig()
    jsonl: JsonlConfig = JsonlConfig()
    simulated: SimulatedConfig = SimulatedConfig()
    streams: tuple[StreamConfig, ...] = field(factory=_default_streams, validator=_unique_collections)
    pubsub: PubsubConfig = PubsubConfig()
    token_store: TokenStoreConfig = TokenStoreConfig()
    schemas: SchemasConfig = SchemasConfig()
    http: HttpConfig = HttpConfig()
    retry: RetryConfig = RetryConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def token_project_id(self) -> str:
        return self.token_store.project_id or self.pubsub.project_id

    def dead_letter_required(self) -> None:
        if self.schemas.on_invalid == "dead_letter" and not self.pubsub.dead_letter_topic:
            raise ConfigError("schemas.on_invalid: dead_letter needs pubsub.dead_letter_topic; set it or use skip/fail")


class ConfigError(Exception):
    """A configuration problem; the message names the key path and the expected form (exit 2)."""


T = TypeVar("T")


def _strict(kind: type[T], check: Callable[[object], bool], form: str) -> Callable[[object, type], T]:
    def structure(value: object, _: type) -> T:
        if not check(value):
            raise ValueError(f"expected {form}, got {type(value).__name__}")
        return value  # type: ignore[return-value]

    return structure


def _converter() -> cattrs.Converter:
    """The config's own converter: no coercion (cattrs would turn 1.5 into 1 and 5 into "5")."""
    converter = cattrs.Converter(forbid_extra_keys=True, prefer_attrib_converters=True)
    converter.register_structure_hook(str, _strict(str, lambda v: isinstance(v, str), "a string"))
    converter.register_structure_hook(
        int, _strict(int, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
    )
    converter.register_structure_hook(
        float,
        _strict(float, lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    )
    converter.register_structure_hook(bool, _strict(bool, lambda v: isinstance(v, bool), "true or false"))
    return converter


_CONVERTER = _converter()
_SECTIONS = {a.name for a in attrs.fields(ConnectorConfig)}
_ENV_PREFIX = "CONNECTOR_"
_ENV_IGNORED = {"CONNECTOR_CONFIG"}


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> ConnectorConfig:
    """Load YAML (``path`` or ``$CONNECTOR_CONFIG``), apply environment overrides, structure strictly."""
    env = os.environ if environ is None else environ
    path = path or env.get("CONNECTOR_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        raw = _read_yaml(Path(path))
    _apply_environment(raw, env)
    return structure_config(raw)


def structure_config(raw: Mapping[str, Any]) -> ConnectorConfig:
    try:
        config = _CONVERTER.structure(dict(raw), ConnectorConfig)
    except cattrs.BaseValidationError as error:
        messages = cattrs.transform_error(error, path="", format_exception=_describe)
        raise ConfigError("invalid configuration: " + "; ".join(_tidy(m) for m in messages)) from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"invalid configuration: {redact(str(error))}") from None
    config.dead_letter_required()
    return config


_ATTRS_VALIDATOR = re.compile(r"^'(?P<name>\w+)' must be (?P<rule>.*?)(: .*)?$")
_LITERAL = re.compile(r"^(?P<value>.*) not in literal typing\.Literal\[(?P<choices>.*)\]$")


def _describe(error: BaseException, _type: object) -> str:
    """One phrase per problem, in the user's terms (never echoing a value that could be a secret)."""
    text = str(error)
    if isinstance(error, KeyError):
        return "required key missing"
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        return f"unknown key(s) {', '.join(sorted(error.extra_fields))}; check the spelling"
    literal = _LITERAL.match(text)
    if literal:
        return f"expected one of {literal['choices']}, got {literal['value']}"
    validator = _ATTRS_VALIDATOR.match(text)
    if validator:
        return f"@{validator['name']}: must be {validator['rule']}"
    return redact(text)


def _tidy(message: str) -> str:
    """cattrs says ``problem @ $.pubsub``; we say ``pubsub.key: problem``."""
    text, _, where = message.rpartition(" @ ")
    key = where.lstrip("$").lstrip(".")
    if text.startswith("@"):
        name, _, text = text[1:].partition(": ")
        key = f"{key}.{name}" if key else name
    return f"{key or '(top level)'}: {text}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass --config with an existing file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    per_stream: dict[int, dict[str, Any]] = {}
    for name, text in env.items():
        if not name.startswith(_ENV_PREFIX) or name in _ENV_IGNORED or name.startswith("CONNECTOR_TEST_"):
            continue
        section, _, key = name[len(_ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section {section!r}; known: {', '.join(sorted(_SECTIONS))}")
        value = _env_value(name, text)
        if section == "streams" and key:
            index, _, stream_key = key.partition("__")
            if not index.isdigit() or not stream_key:
                raise ConfigError(f"{name}: write CONNECTOR_STREAMS__<n>__<key>, e.g. CONNECTOR_STREAMS__0__TOPIC")
            per_stream.setdefault(int(index), {})[stream_key] = value
        elif key:
            target = raw.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name}: section {section} is not a mapping in the config file")
            target[key] = value
        else:
            raw[section] = value
    if per_stream:
        raw["streams"] = _merge_streams(raw.get("streams"), per_stream)
    if "PORT" in env:
        raw.setdefault("http", {})["port"] = _env_value("PORT", env["PORT"])
    project = env.get("GOOGLE_CLOUD_PROJECT")
    pubsub = raw.get("pubsub")
    if project and (not isinstance(pubsub, dict) or pubsub.get("project_id") is None):
        raw.setdefault("pubsub", {})["project_id"] = project


def _merge_streams(streams: object, per_stream: dict[int, dict[str, Any]]) -> list[Any]:
    """``CONNECTOR_STREAMS__<n>__<key>`` over the file's streams (or none): one value per variable, no
    commas or spaces, so it survives ``sh``, ``docker --env-file`` and ``gcloud --set-env-vars``."""
    merged = [dict(s) if isinstance(s, dict) else s for s in streams] if isinstance(streams, list) else []
    for index in sorted(per_stream):
        if index < len(merged) and isinstance(merged[index], dict):
            merged[index].update(per_stream[index])
        elif index == len(merged):
            merged.append(per_stream[index])
        else:
            raise ConfigError(
                f"CONNECTOR_STREAMS__{index}__…: stream {len(merged)} is not set; number the streams 0, 1, 2, …"
            )
    return merged


def _env_value(name: str, text: str) -> Any:
    """Environment values are YAML scalars/flow collections: ``32`` is a number, ``null`` is None."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"{name}: cannot parse {text!r}; use a YAML scalar, list or mapping") from None
