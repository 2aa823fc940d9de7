"""``connector admin units`` against the Firestore emulator: each unit's owner, lease expiry, checkpoint
age and lag, and the live instances; ``admin tokens list`` still lists only checkpoints."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

from adapters import gcp_emulators
from application.ports import Checkpoint
from domain.change_event import ClusterTime, ResumeToken

from .test_run_end_to_end import CONNECTOR, Deployment


def test_admin_units_shows_owners_expiry_age_and_lag(
    deployment: Deployment, firestore_emulator: gcp_emulators.Emulator
) -> None:
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("document_type: inventory,", "document_type: inventory, partitions: 2,"))
    store = deployment.store(firestore_emulator)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    read_at = ClusterTime(seconds=int(an_hour_ago.timestamp()) - 60, increment=1)
    store.save("warehouse", Checkpoint(token=ResumeToken("8265AB"), cluster_time=read_at, updated_at=an_hour_ago),
               generation=0)  # fmt: skip
    assert store.acquire_lease("warehouse", owner="host-a-101-abc", ttl_seconds=60) is not None
    assert store.acquire_lease("warehouse.inventory.p1of2", owner="host-b-202-def", ttl_seconds=-1) is not None
    store.heartbeat("host-a-101-abc", ttl_seconds=60, units=1)
    store.heartbeat("host-b-202-def", ttl_seconds=-1, units=1)  # gone: its heartbeat expired

    args = ["admin", "units", "--config", str(deployment.config)]
    result = subprocess.run([*CONNECTOR, *args, "--json"], env=deployment.env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rows = {row["unit"]: row for row in lines if "unit" in row}
    assert list(rows) == ["warehouse", "warehouse.inventory.p0of2", "warehouse.inventory.p1of2"]
    base = rows["warehouse"]
    assert base["owner"] == "host-a-101-abc" and 0 < base["lease_expires_in_seconds"] <= 60
    assert 3500 < base["checkpoint_age_seconds"] < 3700 and 3560 < base["lag_seconds"] < 3760
    assert rows["warehouse.inventory.p1of2"]["owner"] is None  # expired: free to take
    assert rows["warehouse.inventory.p0of2"] == {"unit": "warehouse.inventory.p0of2", "owner": None,
                                                 "lease_expires_in_seconds": None, "generation": None,
                                                 "checkpoint_age_seconds": None, "lag_seconds": None}  # fmt: skip
    assert [row for row in lines if "instance" in row] == [{"instance": "host-a-101-abc", "units": 1}]

    table = subprocess.run([*CONNECTOR, *args], env=deployment.env, capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    assert "host-a-101-abc" in table.stdout and "1 live instance(s)" in table.stdout
    tokens = subprocess.run([*CONNECTOR, "admin", "tokens", "list", "--config", str(deployment.config)],
                            env=deployment.env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert tokens.returncode == 0 and "warehouse " in tokens.stdout and ".instance" not in tokens.stdout
