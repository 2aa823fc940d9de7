"""Balanced unit leases, KCL-style: which free units an instance takes, and which one it hands back.

Every instance decides alone, from the same lease table (Firestore): the live instances (counted
from their heartbeats), each unit's live holder, and how long it has itself seen a unit free. Each
aims for its share, ``ceil(units / instances)``:

- it takes free (released or expired) units while below its share, the least loaded first: while a
  less loaded instance exists it leaves free units to it. A unit free for a third of a lease time is
  an orphan and anyone takes it, beyond its share too (the live count may still include an instance
  that has just died), so no unit stays unserved for a lease time while an instance lives;
- it hands back one unit when it holds more than its share, or when it holds more than
  ``floor(units / instances)`` while another instance holds fewer: only the most loaded instance
  (ties: the smallest name) does so, one unit at a time, and the caller rate-limits it.

So a balanced table (every count ``floor`` or ``ceil``) is a fixed point: nobody takes, nobody
hands back, whatever the heartbeat jitter.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Mapping, Sequence

from attrs import frozen


@frozen
class Moves:
    take: tuple[str, ...] = ()
    hand_back: str | None = None


def share(*, units: int, instances: int) -> tuple[int, int]:
    """(floor, ceil) of units per live instance."""
    n = max(1, instances)
    return units // n, math.ceil(units / n)


def rebalance(
    *,
    me: str,
    units: Sequence[str],
    holders: Mapping[str, str],
    instances: Collection[str],
    free_for: Mapping[str, float],
    orphan_after_s: float,
) -> Moves:
    """``holders``: unit -> the instance holding its unexpired lease (free units absent); ``instances``:
    the live instances (``me`` included or not); ``free_for``: seconds ``me`` has seen each free unit free."""
    live = set(instances) | {me}
    lo, hi = share(units=len(units), instances=len(live))
    counts = {instance: 0 for instance in live}
    for holder in holders.values():
        if holder in counts:
            counts[holder] += 1
    mine = sorted(unit for unit in units if holders.get(unit) == me)
    free = [unit for unit in units if unit not in holders]
    least = min(counts.values())
    orphans = sorted((unit for unit in free if free_for.get(unit, 0.0) >= orphan_after_s), key=lambda u: -free_for[u])
    if free and len(mine) < hi and counts[me] == least:
        rotation = zlib.crc32(me.encode()) % len(free)  # instances starting together try different units first
        rest = [unit for unit in free[rotation:] + free[:rotation] if unit not in orphans]
        return Moves(take=tuple(orphans + rest)[: max(hi - len(mine), len(orphans))])
    if free:  # a less loaded instance should take these; anyone takes orphans; nothing is handed back meanwhile
        return Moves(take=tuple(orphans))
    donor = min(live, key=lambda instance: (-counts[instance], instance))
    if donor == me and mine and (len(mine) > hi or (len(mine) > lo and least < lo)):
        return Moves(hand_back=mine[-1])
    return Moves()
