"""Which MongoDB errors a change stream retries, which stop it, and the one line each stop prints.

The rules are the driver's change-stream rules (the MongoDB change streams specification), not a
list of codes we happened to see:
- network errors (``ConnectionFailure``: hang-ups, timeouts, no server reachable) and a cursor the
  server lost (``CursorNotFound``, 43) are resumable;
- a server error carrying the ``ResumableChangeStreamError`` label is resumable (4.4+ servers label
  what a driver may resume), and so is one of the specification's resumable codes (errors on the
  opening aggregate carry no label);
- history lost (286), fatal (280), invalid token (260) and BSONObjectTooLarge (10334) are never
  retried and never "fixed" by silently starting from now;
- anything else (an option the server refuses, 40415; a bad pipeline) is retried a few times, in
  case it was a passing state of the server, then stops with a line naming the code and likely fix.

pymongo 4.9+ refuses servers older than MongoDB 4.4 (wire version 9): that is the floor. An older
server is a usage error (exit 2), not a URI problem and not worth a retry.
"""

from __future__ import annotations

import re

from pymongo import errors as pymongo_errors

from application.ports import SourceError
from domain.redaction import redact

MIN_WIRE_VERSION, MIN_SERVER = 9, "4.4"
EXPANDED_EVENTS_MIN_WIRE_VERSION = 17  # MongoDB 6.0: showExpandedEvents, fullDocumentBeforeChange
SPLIT_EVENTS_MIN_WIRE_VERSION = 21  # MongoDB 7.0: $changeStreamSplitLargeEvent
_SERVER_OF_WIRE = {0: "2.4", 2: "2.6", 3: "3.0", 4: "3.2", 5: "3.4", 6: "3.6", 7: "4.0", 8: "4.2", 9: "4.4", 13: "5.0"}
_SERVER_OF_WIRE |= {17: "6.0", 21: "7.0", 25: "8.0"}
NON_RESUMABLE_TRIES = 3  # consecutive failures with an unknown error before the worker stops

HISTORY_LOST, FATAL, INVALID_TOKEN, TOO_LARGE = 286, 280, 260, 10334
_FATAL_CODES = {
    HISTORY_LOST: "the stored resume token has fallen off the oplog (ChangeStreamHistoryLost)",
    FATAL: "the change stream cannot continue (ChangeStreamFatalError)",
    INVALID_TOKEN: "the stored resume token is not valid for this deployment (InvalidResumeToken)",
    TOO_LARGE: "an event exceeds 16 MB (BSONObjectTooLarge)",
}
_AUTH_CODES = {13: "not authorized", 18: "authentication failed"}
# The specification's resumable codes (for errors without the label, e.g. on the opening aggregate).
RESUMABLE_CODES = frozenset(
    {6, 7, 43, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436}
)
_LIKELY_FIX = {
    40415: "the server refuses an option of this change stream: compare its version with the README's Requirements",
    40324: "the server does not know a pipeline stage: use MongoDB 6.0+ (7.0+ for split events)",
    17: "the server does not know a pipeline operator: compare its version with the README's Requirements",
    20: "change streams need a replica set or sharded cluster: add ?replicaSet=... to mongodb.uri",
    40573: "change streams need a replica set or sharded cluster, not a standalone server",
}
_WIRE_VERSION = re.compile(r"reports wire version (\d+)")


def server_of_wire(wire_version: int) -> str:
    """The MongoDB release of a wire version (a rapid release between two majors: the older major+)."""
    if wire_version in _SERVER_OF_WIRE:
        return _SERVER_OF_WIRE[wire_version]
    older = max((w for w in _SERVER_OF_WIRE if w < wire_version), default=0)
    return f"{_SERVER_OF_WIRE[older]}+"


def pre_images_unsupported(setting: str, wire_version: int) -> SourceError | None:
    """Pre-images (``fullDocumentBeforeChange``) need MongoDB 6.0: say so instead of a refused option."""
    if setting == "off" or wire_version >= EXPANDED_EVENTS_MIN_WIRE_VERSION:
        return None
    return SourceError(
        f"mongodb.full_document_before_change: {setting} needs MongoDB 6.0+; the server is MongoDB "
        f"{server_of_wire(wire_version)} (wire version {wire_version})",
        retryable=False,
        recovery="set mongodb.full_document_before_change to off, or upgrade the server to MongoDB 6.0+",
        usage=True,
    )


def is_resumable(error: BaseException) -> bool:
    """The change-stream resumability rule of the driver and the specification."""
    if isinstance(error, pymongo_errors.ConnectionFailure | pymongo_errors.CursorNotFound):
        return True
    if isinstance(error, pymongo_errors.OperationFailure):
        return error.has_error_label("ResumableChangeStreamError") or (error.code or 0) in RESUMABLE_CODES
    return False


def _fatal(code: int, text: str, stream_id: str) -> SourceError:
    if code == TOO_LARGE:
        recovery = (
            "use MongoDB 7.0+ (events are then split), or set mongodb.full_document_before_change to off; "
            f"to skip the event: connector admin tokens set {stream_id} --at <a time after it>"
        )
    else:
        recovery = (
            f"move the position: connector admin tokens set {stream_id} --at <RFC 3339 time within the "
            f"oplog window> (then backfill what was missed), or connector admin tokens reset {stream_id} --yes"
        )
    return SourceError(f"{_FATAL_CODES[code]} (code {code}): {text}", retryable=False, recovery=recovery)


def classify(error: BaseException, *, stream_id: str, failures: int = 1) -> SourceError:
    """A pymongo error as a SourceError. ``failures`` counts consecutive non-resumable failures."""
    text = redact(str(error))
    if isinstance(error, pymongo_errors.ConfigurationError | pymongo_errors.InvalidURI):
        old = _WIRE_VERSION.search(str(error))
        if old is not None:
            wire = int(old.group(1))
            return SourceError(
                f"MongoDB {server_of_wire(wire)} (wire version {wire}) is older than the supported floor, "
                f"MongoDB {MIN_SERVER}",
                retryable=False,
                recovery=f"upgrade the server to MongoDB {MIN_SERVER} or later (README: Requirements)",
                usage=True,
            )
        return SourceError(f"MongoDB configuration: {text}", retryable=False, recovery="fix mongodb.uri", usage=True)
    if is_resumable(error):
        if isinstance(error, pymongo_errors.ServerSelectionTimeoutError):
            return SourceError(f"MongoDB unreachable (no server answered in time): {text}", retryable=True)
        if isinstance(error, pymongo_errors.OperationFailure):
            return SourceError(f"resumable change stream error (code {error.code}): {text}", retryable=True)
        return SourceError(f"MongoDB connection failed: {type(error).__name__}: {text}", retryable=True)
    code = getattr(error, "code", None) or 0
    if code in _FATAL_CODES:
        return _fatal(code, text, stream_id)
    if code in _AUTH_CODES:
        return SourceError(
            f"MongoDB: {_AUTH_CODES[code]} (code {code}): {text}",
            retryable=False,
            recovery="check mongodb.uri credentials and the user's changeStream/find privileges",
        )
    what = f"MongoDB refused the change stream (code {code})" if code else f"MongoDB error {type(error).__name__}"
    if failures < NON_RESUMABLE_TRIES:
        return SourceError(f"{what}, not resumable, try {failures} of {NON_RESUMABLE_TRIES}: {text}", retryable=True)
    fix = _LIKELY_FIX.get(code, "look the code up in MongoDB's error codes; the checkpoint is kept")
    return SourceError(f"{what}, not resumable, after {failures} tries: {text}", retryable=False, recovery=fix)
