"""Event ids, ordering keys and the envelope are part of the contract consumers code against."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from domain.change_event import ClusterTime
from domain.envelope import (
    MAX_ORDERING_KEY_BYTES,
    OrderingKeys,
    OrderingStrategy,
    bucket_of,
    canonical_json,
    event_id,
    format_cluster_time,
    ordering_key,
)


def test_event_id_is_first_32_hex_of_sha256_of_data() -> None:
    data = "8265FAB3A3000000022B042C0100296E5A1004"
    assert event_id(data) == hashlib.sha256(data.encode()).hexdigest()[:32]
    assert len(event_id(data)) == 32


@given(st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=200))
def test_event_ids_are_stable_and_distinct_per_token(data: str) -> None:
    assert event_id(data) == event_id(str(data))
    assert event_id(data) != event_id(data + "0")


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": {"y": 2, "x": 1}}) == b'{"a":{"x":1,"y":2},"b":1}'


def test_bucketed_key_is_stable_and_in_range() -> None:
    key = {"_id": "65f1a2b3c4d5e6f708192a3b"}
    first = ordering_key(strategy=OrderingStrategy.BUCKETED, collection="inventory", document_key=key, buckets=16)
    again = ordering_key(strategy=OrderingStrategy.BUCKETED, collection="inventory", document_key=dict(key), buckets=16)
    assert first == again == f"inventory:{bucket_of(key, 16)}"
    assert 0 <= bucket_of(key, 16) < 16


@given(
    st.lists(st.one_of(st.text(max_size=30), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=60),
    st.integers(1, 8),
)
def test_one_reused_keyer_gives_each_document_its_own_bucket(ids: list[str | int], buckets: int) -> None:
    """The processing step keeps one OrderingKeys per stream; its bucket-key cache must never hand one
    document another's bucket."""
    keys = OrderingKeys(strategy=OrderingStrategy.BUCKETED, collection="inventory", buckets=buckets)
    for value in ids:
        assert keys({"_id": value}) == f"inventory:{bucket_of({'_id': value}, buckets)}"


def test_document_and_none_keys() -> None:
    key = {"region": "eu", "_id": 5}
    doc = ordering_key(strategy=OrderingStrategy.DOCUMENT, collection="c", document_key=key, buckets=1)
    assert doc == 'c:{"_id":5,"region":"eu"}'
    assert ordering_key(strategy=OrderingStrategy.NONE, collection="c", document_key=key, buckets=1) == ""
    assert ordering_key(strategy=OrderingStrategy.BUCKETED, collection="c", document_key=None, buckets=4) == "c"


def test_overlong_document_key_is_hashed_to_fit() -> None:
    key = {"_id": "x" * 5000}
    result = ordering_key(strategy=OrderingStrategy.DOCUMENT, collection="c", document_key=key, buckets=1)
    assert result.startswith("c:sha256:") and len(result.encode()) <= MAX_ORDERING_KEY_BYTES


def test_cluster_time_has_second_precision() -> None:
    assert format_cluster_time(ClusterTime(seconds=1710928803, increment=2)) == "2024-03-20T10:00:03Z"
    assert format_cluster_time(None) is None
