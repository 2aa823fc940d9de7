"""Reassemble events that ``$changeStreamSplitLargeEvent`` cut into fragments.

The server splits an event over 16 MiB into fragments ``{_id, splitEvent: {fragment, of}, ...}``;
fragment 1 carries the small fields, fragments 2..N only ``_id``, ``splitEvent`` and whole big
fields. Merging the fields in fragment order gives the original event; its resume token is the
*last* fragment's (resuming from an earlier fragment's token would replay a partial event).
Anything else (a gap, a repeat, a new event before the last fragment) means events were lost
between the server and us, so it is an error naming the token rather than a guess.
"""

from __future__ import annotations

from domain.json_types import JsonObject, JsonValue


class SplitEventError(ValueError):
    """Fragments arrived out of order or incomplete."""


def _token_text(fragment: JsonObject) -> str:
    token = fragment.get("_id")
    if isinstance(token, dict) and isinstance(token.get("_data"), str):
        return str(token["_data"])
    return "<no token>"


def _split_info(fragment: JsonObject) -> tuple[int, int] | None:
    info: JsonValue = fragment.get("splitEvent")
    if info is None:
        return None
    if isinstance(info, dict):
        n, total = info.get("fragment"), info.get("of")
        if isinstance(n, int) and isinstance(total, int) and 1 <= n <= total:
            return n, total
    raise SplitEventError(
        f"fragment {_token_text(fragment)} has a malformed splitEvent {info!r}; expected {{fragment, of}}"
    )


class SplitEventAssembler:
    """Feed events in stream order; get back whole events (``None`` while a split is pending)."""

    def __init__(self) -> None:
        self._parts: list[JsonObject] = []
        self._expected_total = 0

    @property
    def pending(self) -> bool:
        """True while fragments of an event are held (its token must not be checkpointed)."""
        return bool(self._parts)

    def feed(self, event: JsonObject) -> JsonObject | None:
        info = _split_info(event)
        if info is None:
            if self._parts:
                raise SplitEventError(
                    f"event {_token_text(event)} arrived before fragment {len(self._parts) + 1} of "
                    f"{self._expected_total} of the split event {_token_text(self._parts[0])}; "
                    "fragments were lost: resume from the last checkpoint"
                )
            return event
        number, total = info
        expected = len(self._parts) + 1
        if number != expected or (self._parts and total != self._expected_total):
            first = _token_text(self._parts[0]) if self._parts else _token_text(event)
            raise SplitEventError(
                f"fragment {number} of {total} (token {_token_text(event)}) arrived where fragment "
                f"{expected} of the split event {first} was expected; resume from the last checkpoint"
            )
        self._parts.append(event)
        self._expected_total = total
        if number < total:
            return None
        return self._merge()

    def _merge(self) -> JsonObject:
        parts, self._parts, self._expected_total = self._parts, [], 0
        merged: JsonObject = {"_id": parts[-1]["_id"]}
        for part in parts:
            for key, value in part.items():
                if key not in ("_id", "splitEvent"):
                    merged[key] = value
        return merged
