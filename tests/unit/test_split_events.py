"""Split-event reassembly: fragments join in order; a gap or a stray event is a named error."""

from __future__ import annotations

import pytest

from domain.split_events import SplitEventAssembler, SplitEventError


def fragment(n: int, of: int, token: str, **fields: object) -> dict:
    return {"_id": {"_data": token}, "splitEvent": {"fragment": n, "of": of}, **fields}


def test_fragments_merge_in_order_with_last_token() -> None:
    assembler = SplitEventAssembler()
    assert assembler.feed(fragment(1, 3, "A1", operationType="update", ns={"db": "d"})) is None
    assert assembler.pending
    assert assembler.feed(fragment(2, 3, "A2", fullDocument={"big": 1})) is None
    whole = assembler.feed(fragment(3, 3, "A3", fullDocumentBeforeChange={"big": 0}))
    assert whole == {
        "_id": {"_data": "A3"},
        "operationType": "update",
        "ns": {"db": "d"},
        "fullDocument": {"big": 1},
        "fullDocumentBeforeChange": {"big": 0},
    }
    assert not assembler.pending


def test_unsplit_events_pass_through() -> None:
    event = {"_id": {"_data": "B"}, "operationType": "insert"}
    assert SplitEventAssembler().feed(event) is event


def test_missing_fragment_names_the_token() -> None:
    assembler = SplitEventAssembler()
    assembler.feed(fragment(1, 3, "A1"))
    with pytest.raises(SplitEventError, match=r"fragment 3 of 3 \(token A3\).*fragment 2.*A1"):
        assembler.feed(fragment(3, 3, "A3"))


def test_event_before_last_fragment_is_an_error() -> None:
    assembler = SplitEventAssembler()
    assembler.feed(fragment(1, 2, "A1"))
    with pytest.raises(SplitEventError, match="event C arrived before fragment 2 of 2 of the split event A1"):
        assembler.feed({"_id": {"_data": "C"}, "operationType": "insert"})


def test_stream_starting_mid_split_is_an_error() -> None:
    with pytest.raises(SplitEventError, match="fragment 2 of 2"):
        SplitEventAssembler().feed(fragment(2, 2, "A2"))


def test_malformed_split_info() -> None:
    with pytest.raises(SplitEventError, match="malformed splitEvent"):
        SplitEventAssembler().feed({"_id": {"_data": "X"}, "splitEvent": {"fragment": 0, "of": 2}})
