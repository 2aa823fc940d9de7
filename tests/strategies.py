"""Hypothesis strategies for BSON documents as pymongo decodes them (real bson types, default codec options).

``bson_documents(beyond_defaults=True)`` adds what only non-default codec options decode: aware datetimes
(``tz_aware=True``) and ``DatetimeMS`` anywhere in int64, also outside ``datetime``'s range (``DATETIME_AUTO``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from hypothesis import strategies as st

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DBREF_PARAMETERS = {"collection", "id", "database", "_extra"}

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)  # BSON strings may hold NUL
cstrings = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
keys = st.one_of(
    st.sampled_from(["_id", "a.b", "x.y.z", "", "é", "a$", "_schema_version"]),
    cstrings.filter(lambda k: not k.startswith("$")),
)
datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)  # BSON keeps milliseconds
)
int64s = st.one_of(
    st.integers(min_value=_INT64_MIN, max_value=_INT64_MAX),
    st.sampled_from([_INT64_MIN, _INT64_MAX, _INT64_MIN + 1, _INT64_MAX - 1, 0, -1, 2**31, -(2**31) - 1]),
).map(Int64)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20).map(
        lambda d: Decimal128(str(d))
    ),
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "-0", "0.000000", "0.0000001", "1E+6144", "-1E-6176", "0E-6176", "1E+3",
         "9999999999999999999999999999999999", "1.000000000000000000000000000000000", "-0.00001234"]
    ).map(Decimal128),
    st.binary(min_size=16, max_size=16).map(Decimal128.from_bid),  # every bit pattern, non-canonical ones too
)  # fmt: skip
binaries = st.one_of(
    st.binary(max_size=20),  # subtype 0 decodes as bytes
    st.uuids().map(lambda u: Binary(u.bytes, 4)),
    st.builds(Binary, st.binary(max_size=20), st.sampled_from([3, 4, 5, 0x80])),
)
regexes = st.builds(Regex, cstrings, st.sampled_from(["", "i", "m", "ms", "ix", "lu", "imsx", "ilmsux"]))

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    int64s,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324]),
    text,
    st.binary(min_size=12, max_size=12).map(ObjectId),
    datetimes,
    decimals,
    binaries,
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    regexes,
    st.just(MinKey()),
    st.just(MaxKey()),
    st.builds(Code, text),
)

aware_datetimes = st.builds(
    lambda d, minutes: d.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
datetime_ms = int64s.map(lambda ms: DatetimeMS(int(ms)))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    documents = st.dictionaries(keys, children, max_size=4)
    extra_fields = st.dictionaries(keys.filter(lambda k: k not in _DBREF_PARAMETERS), children, max_size=2)
    return st.one_of(
        st.lists(children, max_size=4),
        documents,
        st.builds(Code, text, documents),  # code with scope
        st.builds(
            lambda collection, id_, database, extra: DBRef(collection, id_, database, **extra),
            cstrings,
            children,
            st.none() | cstrings,
            extra_fields,
        ),
    )


def bson_documents(max_leaves: int = 25, *, beyond_defaults: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Documents of every BSON type pymongo decodes, nested a few levels deep, keys never starting with ``$``."""
    leaves = st.one_of(scalars, aware_datetimes, datetime_ms) if beyond_defaults else scalars
    values = st.recursive(leaves, _containers, max_leaves=max_leaves)
    return st.dictionaries(keys, values, max_size=6)
