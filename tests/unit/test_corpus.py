"""Every line of the shared corpus goes through decode, reassembly and the processing step.

The corpus holds real-format events transcribed from the server's source (see its README); these
tests skip with a reason where it is absent (users' clones).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from bson import json_util

from adapters.jsonl_events import read_jsonl_events
from adapters.schema_files import load_registry
from application.event_flow import whole_events
from application.outcomes import Publish, Reject, Skip, SkipReason
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.bson_json import bson_to_json
from domain.change_event import ChangeEvent, OperationKind
from domain.event_codec import decode_event_line
from tests.corpus import corpus_file

ROUTES = {
    "inventory": StreamRoute(collection="inventory", topic="inventory-changes", document_type="inventory"),
    "transactions": StreamRoute(collection="transactions", topic="transaction-changes", document_type="transaction"),
}


def step(**overrides: object) -> ProcessingStep:
    registry, migrator = load_registry()
    settings = ProcessingSettings(routes=ROUTES, database="warehouse", **overrides)  # type: ignore[arg-type]
    return ProcessingStep(settings=settings, registry=registry, migrator=migrator)


def events_of(path: Path) -> Iterator[ChangeEvent]:
    with path.open("rb") as lines:
        for _, event in whole_events(read_jsonl_events(lines, name=path.name)):
            yield event


@pytest.mark.parametrize("name", ["server_shapes.jsonl", "domain_events.jsonl"])
def test_fast_decoder_matches_json_util(name: str) -> None:
    for line in corpus_file(name).read_bytes().splitlines():
        assert decode_event_line(line) == bson_to_json(json_util.loads(line))


def test_server_shapes_all_handled_without_error() -> None:
    processing = step(include_before=True)
    outcomes = [processing.process(event) for event in events_of(corpus_file("server_shapes.jsonl"))]
    assert len(outcomes) == 39
    by_operation: dict[str, set[str]] = {}
    for outcome in outcomes:
        by_operation.setdefault(outcome.event.operation, set()).add(type(outcome).__name__)
    assert by_operation["invalidate"] == {"Skip"}
    assert by_operation["endOfTransaction"] == {"Skip"}
    assert by_operation["futureOpType"] == {"Skip"}
    for ddl in ("drop", "rename", "createIndexes", "modify", "shardCollection", "refineCollectionShardKey",
                "reshardCollection", "dropIndexes", "dropDatabase"):  # fmt: skip
        assert "Publish" in by_operation[ddl], ddl
    unmapped = [o for o in outcomes if isinstance(o, Skip) and o.reason is SkipReason.COLLECTION_NOT_CONFIGURED]
    assert {o.event.collection for o in unmapped} <= {"audit", "inventory_2023"}
    drop_database = next(o for o in outcomes if o.event.operation == "dropDatabase")
    assert isinstance(drop_database, Publish) and len(drop_database.messages) == len(ROUTES)
    for outcome in outcomes:
        if isinstance(outcome, Publish):
            for message in outcome.messages:
                data = orjson.loads(message.data)
                assert data["resume_token"] == outcome.event.token.data
                if outcome.event.kind is OperationKind.DATA and data["document"] is not None:
                    assert data["document"]["_schema_version"] == data["schema"]["version"]


def test_domain_events_meet_their_expected_outcomes() -> None:
    expected = [orjson.loads(line) for line in corpus_file("domain_events.expected.jsonl").read_bytes().splitlines()]
    events = list(events_of(corpus_file("domain_events.jsonl")))
    assert len(events) == len(expected) == 60
    processing = step()
    for event, want in zip(events, expected, strict=True):
        assert event.token.data == want["token"]
        outcome = processing.process(event)
        label = f"{want['token'][-20:]} {want.get('detail') or ''}"
        if want["outcome"] == "reject":
            assert isinstance(outcome, Reject), label
            assert outcome.reason.value == want["reason"], label
            assert outcome.source_version == want["source_version"], label
            paths = {violation.path for violation in outcome.violations}
            for path in want.get("error_paths") or []:
                assert path in paths, (label, outcome.errors)
            continue
        data = orjson.loads(_single(outcome).data)
        if want["outcome"] == "no_document":
            assert data["document"] is None and data["schema"] is None, label
        else:
            assert data["schema"] == {
                "type": want["document_type"],
                "version": want["published_version"],
                "source_version": want["source_version"],
            }, label
            assert data["document"]["_schema_version"] == want["published_version"], label


def test_split_events_reassemble_and_meet_expectations() -> None:
    expected = [orjson.loads(line) for line in corpus_file("split_events.expected.jsonl").read_bytes().splitlines()]
    events = list(events_of(corpus_file("split_events.jsonl")))
    assert [e.token.data for e in events] == [w["token"] for w in expected]
    roomy = step(include_before=True, max_message_bytes=64_000_000)
    strict = step(include_before=True)
    for event, want in zip(events, expected, strict=True):
        data = orjson.loads(_single(roomy.process(event)).data)
        assert data["schema"]["source_version"] == want["source_version"]
        assert data["schema"]["version"] == want["published_version"]
        assert data["document"] is not None and data["document_before"] is not None
        if want["fragments"] > 1:  # over 16 MB: never sent truncated, rejected as too_large
            outcome = strict.process(event)
            assert isinstance(outcome, Reject) and outcome.reason.value == "too_large"


def _single(outcome: object) -> object:
    assert isinstance(outcome, Publish), outcome
    (message,) = outcome.messages
    return message
