"""A real Prometheus server scrapes a running ``connector run`` on the emulators, and PromQL through its
HTTP API sees what the connector published: the exposition works end to end, not only in a parser.

Prometheus (the Debian ``prometheus`` package's server) scrapes every second into a temporary data
directory. The connector follows a JSONL file of simulated events, so it stays up after publishing
them; the expected count comes from ``connector replay`` of the same file.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters import gcp_emulators
from tests.monitoring import prometheus_tool

from .test_metrics_exposition import CONNECTOR, poll, running_connector, simulated_events
from .test_run_end_to_end import Deployment

EVENTS = 1000


@contextlib.contextmanager
def prometheus_server(tmp: Path, target_port: int) -> Iterator[str]:
    """A Prometheus scraping ``127.0.0.1:target_port`` every second; yields its base URL."""
    binary = prometheus_tool("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: connector, static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]}}\n"
    )
    port = gcp_emulators.free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=out,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            poll(lambda: _get(f"{url}/-/ready") is not None or process.poll() is not None, deadline_s=120,
                 what="Prometheus to be ready")  # fmt: skip
            assert process.poll() is None, log.read_text()[-3000:]
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _get(url: str) -> bytes | None:
    with contextlib.suppress(OSError):
        return bytes(urllib.request.urlopen(url, timeout=5).read())
    return None


def query(url: str, promql: str) -> list[dict[str, Any]]:
    body = _get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    if body is None:
        return []
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_published_count_and_the_lag(deployment: Deployment, tmp_path: Path) -> None:
    simulated_events(deployment.events, EVENTS)
    replayed = subprocess.run(
        [*CONNECTOR, "replay", str(deployment.events), "--config", str(deployment.config)],
        env=deployment.env, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    expected = len(replayed.stdout.splitlines())
    assert 0 < expected <= EVENTS

    config = tmp_path / "follow.yaml"
    config.write_text(
        deployment.config.read_text().replace(f"jsonl: {{path: {deployment.events}}}",
                                              f"jsonl: {{path: {deployment.events}, follow: true}}")
        + "http: {host: 127.0.0.1}\n"
    )  # fmt: skip
    assert "follow: true" in config.read_text()

    with (
        running_connector(config, deployment.env, tmp_path / "connector.log") as port,
        prometheus_server(tmp_path, port) as url,
    ):
        poll(lambda: scalar(url, "sum(connector_events_published_total)") == expected, deadline_s=240,
             what=f"Prometheus to see {expected} published events")  # fmt: skip
        lag = query(url, 'connector_lag_seconds{job="connector"}')
        up = scalar(url, 'up{job="connector"}')

    assert lag, "connector_lag_seconds is empty in Prometheus"
    assert float(lag[0]["value"][1]) > 0  # the simulated events' cluster times lie in the past
    assert up == 1.0
