"""``connector backfill --from-file`` on the emulators, as a user runs it: every valid document arrives
as a snapshot, invalid ones are rejected and counted, and a SIGKILL mid-way loses nothing on rerun.
Also the example batch script, run the way its docstring says."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from adapters.firestore_token_store import FirestoreTokenStore
from adapters.gcp_emulators import Emulator
from adapters.simulator import WorkloadSpec, generate_events
from application.backfill import backfill_stream_id
from domain.envelope import event_id
from domain.extended_json import extended_json_to_json
from entrypoints.library import InvalidDocument, Toolkit

from .test_reliability import drain
from .test_run_end_to_end import CONNECTOR, Deployment, connector

ROOT = Path(__file__).resolve().parents[2]


def export(path: Path, count: int) -> list[dict]:
    """A mongoexport-style file: the latest version of each inventory document, canonical Extended JSON."""
    latest: dict[str, dict] = {}
    for event in generate_events(WorkloadSpec(count=count * 4, documents=count + count // 4, seed=3)):
        if event["ns"]["coll"] == "inventory" and event.get("fullDocument"):
            latest[event["fullDocument"]["_id"]["$oid"]] = event["fullDocument"]
    documents = sorted(latest.values(), key=lambda d: d["_id"]["$oid"])[:count]
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in documents))
    return documents


def snapshot_ids(deployment: Deployment, documents: list[dict]) -> set[str]:
    import hashlib

    ids = set()
    for document in documents:
        identity = orjson.dumps(
            ["warehouse", "inventory", extended_json_to_json(document["_id"])], option=orjson.OPT_SORT_KEYS
        )
        ids.add(event_id("SNAPSHOT" + hashlib.sha256(identity).hexdigest().upper()))
    return ids


def wait_for_checkpoint(store: FirestoreTokenStore, stream_id: str, process: subprocess.Popen[bytes]) -> None:
    """Until the running backfill has stored a position (or ended): the kill must land mid-way."""
    deadline = time.monotonic() + 120  # start-up on a loaded machine
    while process.poll() is None and time.monotonic() < deadline:
        if store.load(stream_id) is not None:
            return
        time.sleep(0.2)  # polling Firestore: there is no change feed to await


def test_backfill_from_file_then_resume_after_sigkill(deployment: Deployment, firestore_emulator: Emulator) -> None:
    documents = export(deployment.events, 1500)
    assert len(documents) > 1000
    args = (
        "backfill",
        "--collection",
        "inventory",
        "--from-file",
        str(deployment.events),
        "--config",
        str(deployment.config),
    )
    process = subprocess.Popen([*CONNECTOR, *args, "--rate", "200"], env=deployment.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_checkpoint(deployment.store(firestore_emulator), backfill_stream_id("warehouse", "inventory"), process)
    assert process.poll() is None, "the backfill ended before its first checkpoint: nothing to resume from"
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = connector(*args, env=deployment.env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert b"resuming after _id" in rerun.stderr
    summary = rerun.stderr.decode().rsplit("backfill of inventory:", 1)[1]
    assert "rejected" in summary

    received = drain(deployment.subscriptions["inventory"], set())
    data = [orjson.loads(m.data) for m in received]
    assert {d["operation"] for d in data} == {"snapshot"}
    delivered = {m.attributes["event_id"] for m in received}
    kit = Toolkit.load()
    valid, invalid = [], []
    for document in documents:
        try:
            kit.migrate("inventory", extended_json_to_json(document))  # type: ignore[arg-type]
            valid.append(document)
        except InvalidDocument:
            invalid.append(document)
    assert invalid, "the export should hold some invalid documents"
    assert delivered == snapshot_ids(deployment, valid)  # every valid one, none of the invalid ones
    assert all(d["schema"]["version"] == "v2" for d in data)


def test_example_batch_script(tmp_path: Path) -> None:
    documents = export(tmp_path / "inventory.jsonl", 300)
    out = tmp_path / "inventory.v2.jsonl"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "migrate_export.py"), "inventory",
                             str(tmp_path / "inventory.jsonl"), "--out", str(out)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    migrated = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    invalid = int(result.stderr.strip().splitlines()[-1].split(" migrated, ")[1].split(" invalid")[0])
    assert len(migrated) + invalid == len(documents)
    assert all(d["_schema_version"] == "v2" and "reserved_quantity" in d for d in migrated)
    assert result.returncode == (1 if invalid else 0)
    if invalid:
        assert "line " in result.stderr and ": " in result.stderr
