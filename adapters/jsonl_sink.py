"""Replay output: one ``{"topic", "ordering_key", "attributes", "data"}`` JSON line per message."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from domain.envelope import OutboundMessage


class JsonlMessageSink:
    """Writes messages as replay lines; ``data`` is embedded as the JSON object it already is."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, message: OutboundMessage) -> None:
        line = orjson.dumps(
            {
                "topic": message.topic,
                "ordering_key": message.ordering_key,
                "attributes": dict(message.attributes),
                "data": orjson.Fragment(message.data),
            }
        )
        self._stream.write(line + b"\n")
