"""Scale-out on one box: ``streams[].partitions: 2`` (3 stream units) served by 1, then 2 processes.

For each process count W, W ``connector run`` processes start together on the same config
(``source: jsonl``, Firestore leases and checkpoints, the Pub/Sub emulator); they balance the units
by lease (several units per process). Timed from the first start to the last exit. Caveat printed
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


def run_instances(config: Path, count: int, env: dict[str, str], directory: Path) -> float:
    started = time.monotonic()
    processes = []
    for index in range(count):
        log = (directory / f"{config.stem}-{index}.log").open("wb")
        processes.append(subprocess.Popen([*CONNECTOR, "run", "--config", str(config)], env=env, stdout=log,
                                          stderr=subprocess.STDOUT))  # fmt: skip
    codes = [process.wait() for process in processes]
    if any(codes):
        raise RuntimeError(f"an instance failed: exit codes {codes}; logs in {directory}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--processes", default="1,2", help="process counts to measure")
    parser.add_argument("--partitions", type=int, default=2)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    rows = {}
    with workspace(args.events) as (directory, env, events, _):
        for count in [int(p) for p in args.processes.split(",")]:
            tag = f"w{count}"
            config = write_config(directory, mode="bucketed", events=events, tag=tag, validate=True, latency_ms=50,
                                  buckets=16)  # fmt: skip
            split = f"{{collection: inventory, partitions: {args.partitions},"
            config.write_text(config.read_text().replace("{collection: inventory,", split))
            ensure_topics(PROJECT, [f"inventory-{tag}", f"transactions-{tag}"])
            seconds = run_instances(config, count, env, directory)
            rows[str(count)] = {"processes": count, "seconds": round(seconds, 2),
                                "events_per_s": round(args.events / seconds)}  # fmt: skip
            print(count, rows[str(count)], flush=True)
    out = RESULTS / "partitions.json"
    out.write_text(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(), "events": args.events,
                               "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "partitions": args.partitions, "processes": rows,
                               "note": "JSONL source: every unit decodes the whole file (MongoDB filters "
                                       "server-side); the emulators share the machine"}, indent=2))  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
