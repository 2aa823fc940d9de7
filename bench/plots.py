"""Pictures of ``make bench``'s end-to-end numbers, for the README: people compare bars faster than tables.

Reads ``bench/results/end_to_end.json`` (written by ``bench/end_to_end.py``) and writes three PNGs
beside it:

- ``throughput.png``: per ordering mode, the connector's events/s beside each raw client loop's
  messages/s, labelled with the ratio the benchmark reports;
- ``latency.png``: publish latency p50 and p99 over the run;
- ``stall_rss.png``: resident memory over time, the Pub/Sub stall shaded.

Only the keys named below are read, so the benchmark may record more without breaking the plots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display (CI, ssh)
import matplotlib.pyplot as plt  # after choosing the backend

RESULTS = Path(__file__).resolve().parent / "results"


def plot_throughput(*, modes: list[dict[str, Any]], out: Path) -> Path:
    loops = sorted({name for mode in modes for name in mode["raw_loops"]})
    series = ["connector", *loops]
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(9, 4.5))
    for index, name in enumerate(series):
        xs = [m + (index - (len(series) - 1) / 2) * width for m in range(len(modes))]
        ys = [mode["connector_events_per_s"] if name == "connector" else mode["raw_loops"].get(name, 0.0)
              for mode in modes]  # fmt: skip
        bars = axes.bar(xs, ys, width, label=name if name == "connector" else f"raw loop: {name}")
        if name == "connector":
            labels = [f"×{mode['ratio']:.2f} of {mode['ratio_against']}" for mode in modes]
            axes.bar_label(bars, labels=labels, fontsize=8, padding=2)
    axes.set_xticks(range(len(modes)), [mode["mode"] for mode in modes])
    axes.set_ylabel("events (messages) per second")
    axes.set_title("Throughput per ordering mode: connector beside raw publisher loops")
    axes.legend(fontsize=8)
    return _save(figure, out / "throughput.png")


def plot_latency(*, series: list[dict[str, Any]], out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(9, 4))
    times = [point["t_s"] for point in series]
    axes.plot(times, [point["p50_ms"] for point in series], label="p50")
    axes.plot(times, [point["p99_ms"] for point in series], label="p99")
    axes.set_xlabel("seconds into the run")
    axes.set_ylabel("publish latency (ms)")
    axes.set_title("Publish latency percentiles over time")
    axes.legend()
    return _save(figure, out / "latency.png")


def plot_stall_rss(*, series: list[dict[str, Any]], out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(9, 4))
    times = [point["t_s"] for point in series]
    axes.plot(times, [point["rss_mb"] for point in series], label="RSS")
    stalled = [point["stalled"] for point in series]
    axes.fill_between(times, 0, 1, where=stalled, step="post", alpha=0.2, color="red",
                      transform=axes.get_xaxis_transform(), label="Pub/Sub stalled")  # fmt: skip
    axes.set_xlabel("seconds into the run")
    axes.set_ylabel("resident memory (MB)")
    axes.set_ylim(bottom=0)
    axes.set_title("Memory while Pub/Sub stalls: bounded by max_in_flight_messages")
    axes.legend()
    return _save(figure, out / "stall_rss.png")


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_all(*, results: Path, out: Path) -> list[Path]:
    data = json.loads(results.read_text())
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_throughput(modes=data["modes"], out=out),
        plot_latency(series=data["latency_series"], out=out),
        plot_stall_rss(series=data["stall_rss_series"], out=out),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS / "end_to_end.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    try:
        paths = plot_all(results=arguments.results, out=arguments.out)
    except FileNotFoundError:
        raise SystemExit(f"{arguments.results} does not exist: run bench/end_to_end.py first") from None
    except KeyError as missing:
        raise SystemExit(f"{arguments.results} lacks the key {missing}: rerun bench/end_to_end.py") from None
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
