"""``source: jsonl``: resumes through the stored token, refuses a token it does not have, names bad lines,
and follows a growing file."""

from __future__ import annotations

import threading
from itertools import chain
from pathlib import Path

import orjson
import pytest

from adapters.jsonl_source import JsonlSource
from adapters.simulator import WorkloadSpec, generate_events
from adapters.system_clock import SystemClock
from application.ports import SourceError, SourceEvent, StartPosition
from domain.change_event import ClusterTime, ResumeToken


def write(path: Path, count: int = 50) -> list[str]:
    events = list(generate_events(WorkloadSpec(count=count, documents=20)))
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return [e["_id"]["_data"] for e in events]


def tokens(source: JsonlSource, start: StartPosition) -> list[str]:
    return [item.event.token.data for item in chain.from_iterable(source.read(start)) if isinstance(item, SourceEvent)]


def test_reads_everything_then_ends(tmp_path: Path) -> None:
    expected = write(tmp_path / "e.jsonl")
    assert tokens(JsonlSource(tmp_path / "e.jsonl"), StartPosition()) == expected


def test_resumes_after_the_stored_token(tmp_path: Path) -> None:
    expected = write(tmp_path / "e.jsonl")
    start = StartPosition(resume_after=ResumeToken(expected[19]))
    assert tokens(JsonlSource(tmp_path / "e.jsonl"), start) == expected[20:]


def test_a_token_not_in_the_file_is_a_clear_error(tmp_path: Path) -> None:
    expected = write(tmp_path / "e.jsonl")
    missing = ResumeToken(expected[10][:-4] + "FFFF")
    with pytest.raises(SourceError, match="is not in") as error:
        tokens(JsonlSource(tmp_path / "e.jsonl"), StartPosition(resume_after=missing))
    assert not error.value.retryable and "admin tokens reset" in error.value.recovery
    beyond = ResumeToken("FF" + expected[-1][2:])
    with pytest.raises(SourceError, match="is not in"):
        tokens(JsonlSource(tmp_path / "e.jsonl"), StartPosition(resume_after=beyond))


def test_start_at_a_cluster_time(tmp_path: Path) -> None:
    write(tmp_path / "e.jsonl", count=200)
    source = JsonlSource(tmp_path / "e.jsonl")
    events = [i.event for i in chain.from_iterable(source.read(StartPosition())) if isinstance(i, SourceEvent)]
    at = events[120].cluster_time
    assert at is not None
    later = [i.event for i in chain.from_iterable(source.read(StartPosition(at_time=at))) if isinstance(i, SourceEvent)]
    assert all(e.cluster_time is not None and e.cluster_time >= at for e in later)
    assert later[0].token == next(e.token for e in events if e.cluster_time == at)
    assert ClusterTime(seconds=0, increment=0) < at


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    write(path, count=5)
    with path.open("ab") as handle:
        handle.write(b'{"_id": {"_data": "FF"}, "operationType": "insert"}\nnot json\n')
    with pytest.raises(SourceError, match=r"e.jsonl:6: insert event FF lacks ns.coll or documentKey"):
        tokens(JsonlSource(path), StartPosition())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open") as error:
        tokens(JsonlSource(tmp_path / "nope.jsonl"), StartPosition())
    assert "jsonl.path" in error.value.recovery


def test_follow_picks_up_appended_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    events = list(generate_events(WorkloadSpec(count=10, documents=5)))
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events[:4]))
    clock = SystemClock()
    source = JsonlSource(path, follow=True, poll_interval=0.01, wait=clock.wait_until)
    seen: list[str] = []
    iterator = chain.from_iterable(source.read(StartPosition()))
    for item in iterator:
        assert isinstance(item, SourceEvent)
        seen.append(item.event.token.data)
        if len(seen) == 4:
            with path.open("ab") as handle:  # a writer appends, in two pieces
                line = orjson.dumps(events[4]) + b"\n"
                handle.write(line[:20])
                handle.flush()
                handle.write(line[20:] + b"".join(orjson.dumps(e) + b"\n" for e in events[5:]))
        if len(seen) == 10:
            threading.Timer(0.05, source.close).start()
    assert seen == [e["_id"]["_data"] for e in events]
