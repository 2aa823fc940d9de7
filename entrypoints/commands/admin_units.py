"""``connector admin units``: who serves which stream unit, read from the lease table.

With several units per process and leases balanced over the instances, an operator needs to see the
assignment: each unit's owner (instance, whose name carries host and worker pid), when its lease
expires, how old its checkpoint is and how far it lags (now minus the checkpoint's cluster time),
plus the live instances and how many units each says it serves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from application.ports import Checkpoint, Lease
from entrypoints.cli import handle_errors
from entrypoints.commands.admin import CONFIG_OPTION, _container, admin


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 1)


def _row(unit: str, lease: Lease | None, checkpoint: Checkpoint | None, now: datetime) -> dict[str, Any]:
    live = lease is not None and lease.expires_at > now
    cluster = None if checkpoint is None else checkpoint.cluster_time
    return {
        "unit": unit,
        "owner": lease.owner if live and lease is not None else None,
        "lease_expires_in_seconds": _seconds(lease.expires_at, now) if live and lease is not None else None,
        "generation": None if lease is None else lease.generation,
        "checkpoint_age_seconds": _seconds(now, None if checkpoint is None else checkpoint.updated_at),
        "lag_seconds": None if cluster is None else round(now.timestamp() - cluster.seconds, 1),
    }


@admin.command("units")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@CONFIG_OPTION
@handle_errors
def units_command(as_json: bool, config_path: str | None) -> None:
    """Each stream unit's owner, lease expiry, checkpoint age and lag; then the live instances.

    \b
    Example:
      connector admin units --config config.yaml
    """
    container = _container(config_path)
    store = container.token_store()
    now = datetime.now(UTC)
    leases = {lease.stream_id: lease for lease in store.leases()}
    checkpoints = dict(store.list())
    rows = [_row(u.stream_id, leases.get(u.stream_id), checkpoints.get(u.stream_id), now) for u in container.units()]
    beats = [beat for beat in store.instances() if beat.expires_at > now]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        for beat in beats:
            click.echo(orjson.dumps({"instance": beat.instance, "units": beat.units}).decode())
        return
    click.echo(f"{'unit':<34} {'owner':<36} {'lease':>7} {'checkpoint age':>15} {'lag':>9}")
    for row in rows:
        lease = "free" if row["owner"] is None else f"{row['lease_expires_in_seconds']:.0f}s"
        age = "-" if row["checkpoint_age_seconds"] is None else f"{row['checkpoint_age_seconds']:.0f}s"
        lag = "-" if row["lag_seconds"] is None else f"{row['lag_seconds']:.0f}s"
        click.echo(f"{row['unit']:<34} {row['owner'] or '-':<36} {lease:>7} {age:>15} {lag:>9}")
    click.echo(f"\n{len(beats)} live instance(s): " + (", ".join(f"{b.instance} ({b.units})" for b in beats) or "none"))
