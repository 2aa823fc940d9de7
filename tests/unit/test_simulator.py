"""The built-in workload: deterministic, realistic, real Extended JSON, per-document order visible."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from itertools import chain
from typing import Any

import orjson
from bson import json_util

from adapters.memory.simulated_clock import SimulatedClock
from adapters.simulated_source import SimulatedSource
from adapters.simulator import WorkloadSpec, generate_events, token_of, write_jsonl
from application.ports import SourceEvent, StartPosition
from domain.change_event import ResumeToken

SPEC = WorkloadSpec(seed=7, count=5000, documents=300)


def events(spec: WorkloadSpec = SPEC) -> list[dict[str, Any]]:
    return list(generate_events(spec))


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    first, again = io.BytesIO(), io.BytesIO()
    write_jsonl(SPEC, first)
    write_jsonl(SPEC, again)
    assert first.getvalue() == again.getvalue()
    other = io.BytesIO()
    write_jsonl(WorkloadSpec(seed=8, count=5000, documents=300), other)
    assert other.getvalue() != first.getvalue()


def test_lines_are_real_canonical_extended_json() -> None:
    for event in events()[:2000]:
        line = orjson.dumps(event)
        decoded = json_util.loads(line)
        assert orjson.loads(json_util.dumps(decoded, json_options=json_util.CANONICAL_JSON_OPTIONS)) == event


def test_tokens_increase_and_cluster_times_do_not_go_back() -> None:
    stream = events()
    tokens = [token_of(e) for e in stream]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    times = [(e["clusterTime"]["$timestamp"]["t"], e["clusterTime"]["$timestamp"]["i"]) for e in stream]
    assert times == sorted(times)


def test_documents_carry_per_key_seq_no_and_keys_start_with_insert() -> None:
    last: dict[str, int] = {}
    first_operation: dict[str, str] = {}
    for event in events():
        key = event["documentKey"]["_id"]["$oid"]
        first_operation.setdefault(key, event["operationType"])
        document = event.get("fullDocument")
        if event["operationType"] == "delete":
            assert "fullDocument" not in event
        if document:
            seq = int(document["seq_no"]["$numberInt"])
            assert seq > last.get(key, 0)
            last[key] = seq
    assert set(first_operation.values()) == {"insert"}


def test_the_mix_has_every_kind_of_event_and_document() -> None:
    stream = events(WorkloadSpec(seed=7, count=20000, documents=1000))
    operations = Counter(e["operationType"] for e in stream)
    assert {"insert", "update", "replace", "delete"} <= set(operations)
    assert any(list(e)[:2] == ["txnNumber", "lsid"] for e in stream)
    assert any(e.get("fullDocument", 0) is None for e in stream)
    documents = [e["fullDocument"] for e in stream if e.get("fullDocument")]
    assert any("_schema_version" not in d for d in documents)
    assert any(d.get("_schema_version") == "v9" for d in documents)
    assert any(d.get("last_updated") == "yesterday" for d in documents)
    assert any(d.get("transaction_type") == "gift" for d in documents)
    assert any("$numberDecimal" in str(d.get("unit_price")) for d in documents)
    collections = Counter(e["ns"]["coll"] for e in stream)
    assert 0.7 < collections["inventory"] / len(stream) < 0.9


def test_rate_limiting_sleeps_instead_of_spinning() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    written = write_jsonl(WorkloadSpec(count=100), io.BytesIO(), rate=50, sleep=sleep, clock=lambda: now[0])
    assert written == 100
    assert 1.9 <= now[0] <= 2.1 and len(slept) >= 90


def test_simulated_source_resumes_after_a_token() -> None:
    clock = SimulatedClock()
    source = SimulatedSource(WorkloadSpec(count=300), wait=clock.wait_until, monotonic=clock.monotonic)
    all_events = [
        item.event for item in chain.from_iterable(source.read(StartPosition())) if isinstance(item, SourceEvent)
    ]
    assert len(all_events) == 300
    resumed = [i.event for i in chain.from_iterable(source.read(StartPosition(resume_after=all_events[99].token)))]  # type: ignore[union-attr]
    assert [e.token for e in resumed] == [e.token for e in all_events[100:]]
    rogue = ResumeToken(data=all_events[5].token.data[:-2] + "05")
    try:
        list(source.read(StartPosition(resume_after=rogue)))
    except Exception as error:
        assert "not part of the simulated workload" in str(error)
    else:
        raise AssertionError("a token that is not in the workload must fail")


def test_paced_source_waits_on_the_clock() -> None:
    clock = SimulatedClock()
    source = SimulatedSource(WorkloadSpec(count=200), rate=100, wait=clock.wait_until, monotonic=clock.monotonic)
    assert len(list(chain.from_iterable(source.read(StartPosition())))) == 200
    assert 1.9 <= clock.monotonic() <= 2.1


def test_cli_simulate_writes_the_same_events() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.launch", "simulate", "--count", "50", "--seed", "3"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    expected = io.BytesIO()
    write_jsonl(WorkloadSpec(seed=3, count=50), expected)
    assert result.stdout == expected.getvalue()
