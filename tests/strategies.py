"""Hypothesis strategies for BSON documents as pymongo decodes them (real bson types)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from hypothesis import strategies as st

keys = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12).filter(
    lambda k: not k.startswith("$")
)
datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20).map(
        lambda d: Decimal128(str(d))
    ),
    st.sampled_from([Decimal128("NaN"), Decimal128("Infinity"), Decimal128("-Infinity"), Decimal128("-0")]),
)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.builds(ObjectId),
    datetimes,
    decimals,
    st.binary(max_size=20),
    st.builds(lambda b, s: Binary(b, s), st.binary(max_size=20), st.sampled_from([5, 0x80])),
    st.uuids().map(lambda u: Binary(u.bytes, 4)),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Regex, st.text(alphabet="ab.*^$", max_size=5), st.sampled_from(["", "i", "ms", "ix"])),
    st.just(MinKey()),
    st.just(MaxKey()),
    st.builds(Code, st.text(alphabet="abc()", max_size=8)),
)


def bson_documents(max_leaves: int = 25) -> st.SearchStrategy[dict[str, Any]]:
    values = st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
        max_leaves=max_leaves,
    )
    return st.dictionaries(keys, values, max_size=6)
