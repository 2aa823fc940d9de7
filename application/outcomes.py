"""What the processing step decides for one change event: publish, reject or skip."""

from __future__ import annotations

import enum
from typing import TypeAlias

from attrs import frozen

from domain.change_event import ChangeEvent
from domain.envelope import OutboundMessage
from domain.schema_registry import SchemaViolation


class RejectReason(enum.StrEnum):
    """Rejection reasons (CONTRACT §7): the log field, the dead-letter attribute, the metric label."""

    VALIDATION_FAILED = "validation_failed"
    SCHEMA_UNDETECTED = "schema_undetected"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    MIGRATION_PATH_MISSING = "migration_path_missing"
    MIGRATION_FAILED = "migration_failed"
    MIGRATION_RESULT_INVALID = "migration_result_invalid"
    TOO_LARGE = "too_large"


class SkipReason(enum.StrEnum):
    """Why an event produces no message; skipped events still advance the checkpoint."""

    COLLECTION_NOT_CONFIGURED = "collection_not_configured"
    DATABASE_NOT_CONFIGURED = "database_not_configured"
    INVALIDATE = "invalidate"
    END_OF_TRANSACTION = "end_of_transaction"
    UNKNOWN_OPERATION_TYPE = "unknown_operation_type"


@frozen
class Publish:
    """Send these messages (one, or one per stream topic for ``dropDatabase``)."""

    event: ChangeEvent
    messages: tuple[OutboundMessage, ...]


@frozen
class Reject:
    """Never published to the data topic; ``dead_letter`` is set when a dead-letter topic is configured."""

    event: ChangeEvent
    reason: RejectReason
    errors: tuple[str, ...]
    source_version: str | None
    dead_letter: OutboundMessage | None
    violations: tuple[SchemaViolation, ...] = ()


@frozen
class Skip:
    """Nothing to send, by design (invalidate, endOfTransaction, unknown types, other collections)."""

    event: ChangeEvent
    reason: SkipReason


Outcome: TypeAlias = Publish | Reject | Skip
