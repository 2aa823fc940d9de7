"""Configuration: defaults, environment overrides, and one clear error per bad key naming its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoints.config import ConfigError, ConnectorConfig, load_config, structure_config


def test_defaults_match_the_contract() -> None:
    config = load_config(environ={})
    assert config.source == "mongodb"
    assert config.mongodb.full_document == "updateLookup"
    assert config.mongodb.full_document_before_change == "off"
    assert [s.collection for s in config.streams] == ["inventory", "transactions"]
    assert config.pubsub.ordering == "bucketed" and config.pubsub.ordering_buckets == 16
    assert config.pubsub.max_in_flight_messages == 10000
    assert config.token_store.checkpoint_interval_ms == 1000
    assert config.http.port == 8080
    assert config.retry.max_elapsed_s == 0
    assert config.token_project_id == "local-project"


def test_yaml_then_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("source: jsonl\npubsub: {ordering_buckets: 4, project_id: from-file}\n")
    env = {
        "CONNECTOR_CONFIG": str(path),
        "CONNECTOR_PUBSUB__ORDERING_BUCKETS": "32",
        "CONNECTOR_JSONL__FOLLOW": "true",
        "PORT": "9090",
        "GOOGLE_CLOUD_PROJECT": "ignored-because-file-sets-it",
    }
    config = load_config(environ=env)
    assert config.source == "jsonl"
    assert config.pubsub.ordering_buckets == 32
    assert config.pubsub.project_id == "from-file"
    assert config.jsonl.follow is True
    assert config.http.port == 9090


def test_google_cloud_project_fills_in_when_unset() -> None:
    assert load_config(environ={"GOOGLE_CLOUD_PROJECT": "prod-1"}).pubsub.project_id == "prod-1"


def test_bare_yaml_off_means_off(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mongodb: {full_document_before_change: off}\n")
    assert load_config(path, environ={}).mongodb.full_document_before_change == "off"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sourc": "jsonl"}, "(top level): unknown key(s) sourc"),
        ({"source": "kafka"}, "source: expected one of 'mongodb', 'jsonl', 'simulated', got kafka"),
        ({"mongodb": {"batch_size": "many"}}, "mongodb.batch_size: expected an integer"),
        ({"mongodb": {"batch_size": 0}}, "mongodb.batch_size: must be >= 1"),
        ({"mongodb": {"full_document": "always"}}, "mongodb.full_document: expected one of"),
        ({"mongodb": {"full_document_before_change": "sometimes"}}, "full_document_before_change"),
        ({"jsonl": {"follow": "yes please"}}, "jsonl.follow: expected true or false"),
        ({"streams": [{"collection": "a"}]}, "streams[0].topic: required key missing"),
        ({"streams": [{"collection": "a", "topic": "t", "colour": 1}]}, "streams[0]: unknown key(s) colour"),
        ({"streams": [{"collection": "a", "topic": "t", "partitions": 0}]}, "streams[0].partitions: must be >= 1"),
        ({"streams": [{"collection": "a", "topic": "t", "partitions": 65}]}, "streams[0].partitions: must be <= 64"),
        ({"pubsub": {"ordering": "random"}}, "pubsub.ordering: expected one of"),
        ({"pubsub": {"ordering_buckets": 1.5}}, "pubsub.ordering_buckets: expected an integer"),
        ({"pubsub": {"max_in_flight_messages": -1}}, "pubsub.max_in_flight_messages: must be >= 1"),
        ({"token_store": {"backend": "redis"}}, "token_store.backend: expected one of"),
        ({"token_store": {"checkpoint_interval_ms": 0}}, "token_store.checkpoint_interval_ms: must be >= 1"),
        ({"schemas": {"on_invalid": "ignore"}}, "schemas.on_invalid: expected one of"),
        ({"schemas": {"on_invalid": "dead_letter"}}, "needs pubsub.dead_letter_topic"),
        ({"http": {"port": 70000}}, "http.port: must be <= 65535"),
        ({"retry": {"multiplier": 0.5}}, "retry.multiplier: must be >= 1.0"),
        ({"logging": {"level": "LOUD"}}, "logging.level: expected one of"),
        ({"logging": {"format": "xml"}}, "logging.format: expected one of"),
    ],
)
def test_bad_values_name_their_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        structure_config(raw)
    assert message in str(error.value)


def test_unknown_environment_section_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONNECTOR_PUBSUBB__X: unknown section"):
        load_config(environ={"CONNECTOR_PUBSUBB__X": "1"})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})


def test_secrets_never_appear_in_errors_or_repr() -> None:
    uri = "mongodb://admin:s3cret-pw@db.example:27017/?replicaSet=rs0"
    with pytest.raises(ConfigError) as error:
        structure_config({"mongodb": {"uri": uri, "batch_size": "x"}})
    assert "s3cret-pw" not in str(error.value)
    assert "s3cret-pw" not in repr(structure_config({"mongodb": {"uri": uri}}))


def test_example_files_document_every_key_with_its_default() -> None:
    import attrs
    import yaml

    from entrypoints.config import ConnectorConfig, StreamConfig

    root = Path(__file__).resolve().parents[2]
    example = yaml.safe_load((root / "config" / "config.yaml.example").read_text())
    assert structure_config(example) == ConnectorConfig()
    env_lines = dict(
        line.split("=", 1) for line in (root / ".env.example").read_text().splitlines() if line and line[0] != "#"
    )
    env = {k: v for k, v in env_lines.items() if k.startswith("CONNECTOR_") and k != "CONNECTOR_CONFIG" and v}
    assert load_config(environ=env) == ConnectorConfig()
    for section in attrs.fields(ConnectorConfig):
        value = getattr(ConnectorConfig(), section.name)
        if attrs.has(type(value)):
            for key in attrs.fields(type(value)):
                assert f"CONNECTOR_{section.name.upper()}__{key.name.upper()}" in env_lines, (section.name, key.name)
                assert key.name in example[section.name], (section.name, key.name)
    for key in attrs.fields(StreamConfig):
        assert f"CONNECTOR_STREAMS__0__{key.name.upper()}" in env_lines, key.name


def test_env_example_means_the_same_to_sh_docker_and_dotenv(tmp_path: Path) -> None:
    """``set -a; . ./.env.example``, ``docker run --env-file`` (values taken literally, # lines skipped)
    and python-dotenv (what ``connector`` reads .env with) all see the same variables and values."""
    import subprocess

    from dotenv import dotenv_values

    example = Path(__file__).resolve().parents[2] / ".env.example"
    docker = dict(
        line.split("=", 1) for line in example.read_text().splitlines() if line.strip() and not line.startswith("#")
    )
    assert dotenv_values(example) == docker
    for shell in ("sh", "bash"):
        sourced = subprocess.run(
            [shell, "-c", f"set -a; . {example} && env -0"], env={}, capture_output=True, text=True, check=True
        ).stdout
        seen = dict(entry.split("=", 1) for entry in sourced.split("\0") if "=" in entry)
        assert {k: seen.get(k) for k in docker} == docker, shell
    assert load_config(environ={k: v for k, v in docker.items() if k.startswith("CONNECTOR_")}) == ConnectorConfig()


def test_the_example_config_lets_google_cloud_project_choose_the_project() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "config.yaml.example"
    assert load_config(example, environ={"GOOGLE_CLOUD_PROJECT": "prod-1"}).pubsub.project_id == "prod-1"
    assert load_config(example, environ={}).pubsub.project_id == "local-project"
    pinned = {"CONNECTOR_PUBSUB__PROJECT_ID": "mine", "GOOGLE_CLOUD_PROJECT": "prod-1"}
    assert load_config(example, environ=pinned).pubsub.project_id == "mine"


def test_streams_from_one_variable_per_key() -> None:
    env = {
        "CONNECTOR_STREAMS__0__COLLECTION": "orders",
        "CONNECTOR_STREAMS__0__TOPIC": "order-changes",
        "CONNECTOR_STREAMS__1__COLLECTION": "customers",
        "CONNECTOR_STREAMS__1__TOPIC": "customer-changes",
        "CONNECTOR_STREAMS__1__PARTITIONS": "4",
    }
    streams = load_config(environ=env).streams
    assert [(s.collection, s.topic, s.partitions) for s in streams] == [
        ("orders", "order-changes", 1),
        ("customers", "customer-changes", 4),
    ]
    with pytest.raises(ConfigError, match="CONNECTOR_STREAMS__2__…: stream 0 is not set"):
        load_config(environ={"CONNECTOR_STREAMS__2__TOPIC": "t"})
    with pytest.raises(ConfigError, match="CONNECTOR_STREAMS__<n>__<key>"):
        load_config(environ={"CONNECTOR_STREAMS__TOPIC": "t"})


def _leaf_paths() -> list[tuple[str, ...]]:
    import attrs

    from entrypoints.config import ConnectorConfig, StreamConfig

    paths: list[tuple[str, ...]] = []
    for section in attrs.fields(ConnectorConfig):
        value = getattr(ConnectorConfig(), section.name)
        if section.name == "streams":
            paths += [("streams", "0", key.name) for key in attrs.fields(StreamConfig)]
        elif attrs.has(type(value)):
            paths += [(section.name, key.name) for key in attrs.fields(type(value))]
        else:
            paths.append((section.name,))
    return paths


@pytest.mark.parametrize("path", _leaf_paths(), ids=".".join)
def test_every_key_rejects_a_wrong_type_naming_its_path(path: tuple[str, ...]) -> None:
    raw: dict = {}
    if path[0] == "streams":
        raw["streams"] = [{"collection": "c", "topic": "t", path[2]: ["not", "a", "scalar"]}]
        expected = f"streams[0].{path[2]}"
    elif len(path) == 2:
        raw[path[0]] = {path[1]: ["not", "a", "scalar"]}
        expected = f"{path[0]}.{path[1]}"
    else:
        raw[path[0]] = ["not", "a", "scalar"]
        expected = path[0]
    with pytest.raises(ConfigError) as error:
        structure_config(raw)
    assert expected in str(error.value), str(error.value)
