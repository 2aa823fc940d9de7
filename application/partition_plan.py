"""Where a partition plan took effect, recorded once, before any unit of the plan processes anything.

With ``streams[].partitions`` each unit filters the database's events down to its own share and
checkpoints past the rest. So a unit that has never checkpointed must not start from another unit's
*current* position: on a fresh start the base unit may already have read past this unit's events,
which it filtered out. Every unit of a plan (the base too) therefore makes sure the plan's start is
recorded in the token store before it starts; the first writer wins, and a unit without a checkpoint
of its own starts there.

The recorded start is the earliest position among the checkpoints written under the previous plan
(see :meth:`domain.partitions.StreamUnit.inherits_from`), so a re-split re-reads a little and loses
nothing. A fresh deployment records the configured start: a ``start_at`` time; for "now" with
MongoDB, the clock's time once (so every unit shares it); for a file, None, its top.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from application.ports import Checkpoint, Clock, PlanStart, TokenStore
from domain.change_event import ClusterTime
from domain.partitions import StreamUnit, plan_id, taken_over_by

log = structlog.get_logger("connector.plan")


def previous_plan_start(units: Sequence[StreamUnit], stored: Sequence[tuple[str, Checkpoint]]) -> ClusterTime | None:
    """The earliest cluster time among the checkpoints this plan takes over from; None if there are none."""
    times = [
        checkpoint.cluster_time
        for stream_id, checkpoint in stored
        if taken_over_by(units, stream_id) and checkpoint.cluster_time is not None
    ]
    return min(times) if times else None


def ensure_plan_start(
    *,
    store: TokenStore,
    units: Sequence[StreamUnit],
    clock: Clock,
    start_time: ClusterTime | None,
    pin_now: bool,
) -> PlanStart:
    """The plan's recorded start, recording it first if this is the plan's first unit to start.

    ``start_time`` is the configured ``start_at`` time (None: "now" or "resume"); ``pin_now`` says that
    "now" is not a shared position for this source (MongoDB), so it is pinned to the clock's time.
    Raises ``TokenStoreError`` when the store is unreachable (the caller retries)."""
    plan = plan_id(units)
    recorded = store.plan_start(plan)
    if recorded is not None:
        return recorded
    inherited = previous_plan_start(units, store.list())
    if inherited is not None:
        start, basis = inherited, "previous plan's earliest checkpoint"
    elif start_time is not None:
        start, basis = start_time, "start_at"
    elif pin_now:
        start, basis = ClusterTime(seconds=int(clock.now().timestamp()), increment=0), "now, pinned"
    else:
        start, basis = None, "the source's beginning"
    winner = store.record_plan(plan, PlanStart(cluster_time=start, recorded_at=clock.now()))
    log.info(
        "partition_plan_recorded",
        plan=plan,
        cluster_time=None if winner.cluster_time is None else str(winner.cluster_time),
        basis=basis if winner.cluster_time == start else "another unit recorded it first",
    )
    return winner
