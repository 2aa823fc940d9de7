"""bench/plots.py turns an end_to_end.json of the agreed shape into the README's three PNGs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PLOTS = Path(__file__).resolve().parents[2] / "bench" / "plots.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

RESULTS = {
    "modes": [
        {"mode": "bucketed", "connector_events_per_s": 2656.0, "raw_loops": {"per_key": 6655.0, "unordered": 9100.0},
         "ratio": 0.399, "ratio_against": "per_key", "peak_rss_mb": 210.4},
        {"mode": "none", "connector_events_per_s": 3730.0, "raw_loops": {"unordered": 9957.0},
         "ratio": 0.375, "ratio_against": "unordered", "peak_rss_mb": 175.0},
    ],
    "latency_series": [{"t_s": t, "p50_ms": 20.0 + t, "p99_ms": 80.0 + 3 * t} for t in range(0, 30, 2)],
    "stall_rss_series": [{"t_s": t, "rss_mb": 130.0 + (t if 10 <= t < 20 else 0), "stalled": 10 <= t < 20}
                         for t in range(30)],
}  # fmt: skip


def load_plots() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_plots", PLOTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plots_writes_three_pngs_from_an_end_to_end_result(tmp_path: Path) -> None:
    results = tmp_path / "end_to_end.json"
    results.write_text(json.dumps({**RESULTS, "recorded_but_not_plotted": 1}))
    written = load_plots().plot_all(results=results, out=tmp_path / "png")
    assert sorted(p.name for p in written) == ["latency.png", "stall_rss.png", "throughput.png"]
    for path in written:
        assert path.read_bytes().startswith(PNG_SIGNATURE), path


def test_a_result_without_an_agreed_key_is_one_line_naming_it(tmp_path: Path) -> None:
    results = tmp_path / "end_to_end.json"
    results.write_text(json.dumps({key: value for key, value in RESULTS.items() if key != "latency_series"}))
    run = subprocess.run([sys.executable, str(PLOTS), "--results", str(results), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"{results} lacks the key 'latency_series': rerun bench/end_to_end.py"]
