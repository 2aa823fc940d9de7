"""The oplog guardrails: window and resume margin from the real pymongo reading ``local.oplog.rs`` on the
wire, one line (and no more sampling) where the user may not read it, and lag that keeps growing while
a stream is stalled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bson import Int64, Timestamp

from adapters.memory.metrics import RecordingMetrics
from adapters.mongo_oplog import OplogGauges
from adapters.prometheus_metrics import PrometheusMetrics
from domain.change_event import ClusterTime
from tests.mongo_wire import Reader, ScriptedPrimary


@pytest.fixture
def primary() -> Iterator[ScriptedPrimary]:
    server = ScriptedPrimary(wire_version=21)
    yield server
    server.stop()


def answer_edge(primary: ScriptedPrimary, direction: int, seconds: int) -> None:
    request = primary.receives("find")
    assert request.doc["find"] == "oplog.rs" and request.doc["$db"] == "local"
    assert dict(request.doc["sort"]) == {"$natural": direction} and request.doc["limit"] == 1
    assert request.doc["maxTimeMS"] > 0  # every remote call has a deadline
    cursor = {"id": Int64(0), "ns": "local.oplog.rs", "firstBatch": [{"ts": Timestamp(seconds, 1)}]}
    request.replies({"cursor": cursor, "ok": 1})


def sampling(primary: ScriptedPrimary, metrics: Any, position: ClusterTime | None) -> Reader:
    gauges = OplogGauges(client=primary.client(), metrics=metrics, position=lambda: position)
    return Reader(lambda: iter([gauges.sample()]))


def test_window_and_margin_come_from_the_oldest_and_newest_oplog_entries(primary: ScriptedPrimary) -> None:
    metrics = RecordingMetrics()
    run = sampling(primary, metrics, ClusterTime(seconds=1_000_500, increment=3))
    answer_edge(primary, 1, 1_000_000)
    answer_edge(primary, -1, 1_086_400)
    assert run.take() == [True]
    assert metrics.oplog_windows == [86_400.0] and metrics.resume_margins == [500.0]


def test_a_user_who_may_not_read_the_oplog_is_told_once_and_sampling_ends(primary: ScriptedPrimary) -> None:
    metrics = RecordingMetrics()
    run = sampling(primary, metrics, None)
    primary.pending = primary.receives("find")
    primary.error(13, 'not authorized on local to execute command { find: "oplog.rs" }')
    assert run.take() == [False]
    assert metrics.oplog_windows == [] and metrics.resume_margins == []


def test_lag_keeps_growing_while_nothing_moves() -> None:
    clock = [1_000.0]
    metrics = PrometheusMetrics(now=lambda: clock[0])
    assert metrics.registry.get_sample_value("connector_lag_seconds") == 0.0
    metrics.lag(seconds=0.2)  # a heartbeat of an idle, caught-up stream
    assert metrics.registry.get_sample_value("connector_lag_seconds") == pytest.approx(0.2)
    clock[0] += 90  # then the stream stalls: no heartbeat, no publish
    assert metrics.registry.get_sample_value("connector_lag_seconds") == pytest.approx(90.2)
    metrics.oplog_window(seconds=86_400)
    metrics.resume_margin(seconds=3_600)
    assert metrics.registry.get_sample_value("connector_resume_margin_seconds") == 3_600
    assert metrics.registry.get_sample_value("connector_oplog_window_seconds") == 86_400
