"""Scale-out in one container: ``streams[].partitions: 2`` (3 stream units) served by 1, then 2 workers.

For each worker count W, one ``connector run --workers W`` runs on the config (``source: jsonl``,
Firestore leases and checkpoints, the Pub/Sub emulator); its worker processes balance the units by
lease (several units per process). Timed from the first start to the last exit. Caveat printed
with the numbers: with a JSONL file every unit reads and decodes the whole file and keeps its share,
where MongoDB would filter server-side; and on a 2-core machine the emulators take a core.
Results go to ``bench/results/partitions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.pubsub_admin import ensure_topics
from bench.end_to_end import CONNECTOR, PROJECT, RESULTS, workspace, write_config


def run_workers(config: Path, count: int, env: dict[str, str], directory: Path) -> float:
    started = time.monotonic()
    log = (directory / f"{config.stem}.log").open("wb")
    process = subprocess.Popen([*CONNECTOR, "run", "--workers", str(count), "--config", str(config)], env=env,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    if process.wait():
        raise RuntimeError(f"the run failed: exit code {process.returncode}; logs in {directory}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure")
    parser.add_argument("--partitions", type=int, default=2)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    rows = {}
    with workspace(args.events) as (directory, env, events, _):
        for count in [int(w) for w in args.workers.split(",")]:
            tag = f"w{count}"
            config = write_config(directory, mode="bucketed", events=events, tag=tag, validate=True, latency_ms=50,
                                  buckets=16)  # fmt: skip
            split = f"{{collection: inventory, partitions: {args.partitions},"
            text = config.read_text().replace("{collection: inventory,", split)  # leases of 6 s: units move sooner
            config.write_text(text.replace("token_store: {collection:", "token_store: {lease_seconds: 6, collection:"))
            ensure_topics(PROJECT, [f"inventory-{tag}", f"transactions-{tag}"])
            seconds = run_workers(config, count, env, directory)
            rows[str(count)] = {"workers": count, "seconds": round(seconds, 2),
                                "events_per_s": round(args.events / seconds)}  # fmt: skip
            print(count, rows[str(count)], flush=True)
    out = RESULTS / "partitions.json"
    out.write_text(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(), "events": args.events,
                               "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "partitions": args.partitions, "workers": rows,
                               "note": "JSONL source: every unit decodes the whole file (MongoDB filters "
                                       "server-side); the emulators share the machine"}, indent=2))  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
