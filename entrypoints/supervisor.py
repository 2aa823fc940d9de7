"""``connector run --workers W``: W worker processes in one container, under one supervisor.

One Python process uses one core for its Python work (the GIL), so a container with several CPUs
runs several workers. Each worker is a plain ``connector run`` that competes for stream units by
lease (application/balancer.py) and serves its probes on a loopback port of its own; the
supervisor serves ``/health``, ``/readiness`` and ``/metrics`` for all of them on ``$PORT``:
readiness is that of the workers together (ready while any worker serves a unit and none reports a
problem but standing by), metrics are every worker's series with a ``worker`` label. A worker that
dies is restarted with exponential backoff (one that exits 0 has finished a finite source).
SIGTERM is passed to every worker, which drain within their 10 s; one still running after 9.5 s is
killed. Workers get SIGTERM if the supervisor dies.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import structlog
from attrs import define
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

log = structlog.get_logger("connector.supervisor")

_PR_SET_PDEATHSIG = 1
_STANDBY = {"lease", "stream"}  # a worker without units reports these; the container is not unhealthy for it


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (v2, then v1)."""
    count = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    return max(1, min(count, quota) if quota else count)


def _cgroup_quota() -> int | None:
    try:
        fields = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return math.ceil(int(fields[0]) / int(fields[1]))
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return math.ceil(quota / period) if quota > 0 else None
    except (OSError, ValueError):
        return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@define
class _Worker:
    index: int
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0


class Supervisor:
    def __init__(self, *, workers: int, args: list[str], host: str, port: int) -> None:
        self._args = args  # the worker's ``connector run`` options (the config path)
        self._workers = [_Worker(index) for index in range(workers)]
        self._stopping = threading.Event()
        self._server = make_server(host, port, self._app, threaded=True)
        self.port = int(self._server.server_port)

    # ------------------------------------------------------------------ processes

    def _start(self, worker: _Worker) -> None:
        worker.port = _free_port()
        env = {**os.environ, "PORT": str(worker.port), "CONNECTOR_HTTP__HOST": "127.0.0.1"}
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.launch", "run", "--workers", "1", *self._args],
            env=env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        worker.started_at = time.monotonic()
        log.info("worker_started", worker=worker.index, pid=worker.process.pid, restarts=worker.restarts)

    def request_stop(self, signum: int) -> None:
        """Pass the signal on: the first drains every worker, a second stops them at once."""
        self._stopping.set()
        for worker in self._workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signum)

    def run(self) -> int:
        threading.Thread(target=self._server.serve_forever, name="http-probes", daemon=True).start()
        for worker in self._workers:
            if not self._stopping.is_set():  # a signal during start-up: start nothing more
                self._start(worker)
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for worker in self._workers:
                self._supervise(worker, now)
            if all(w.process is not None and w.process.poll() == 0 for w in self._workers):
                break  # a finite source: every worker reached its end and exited 0
        deadline = time.monotonic() + 9.5
        codes = []
        for worker in self._workers:
            if worker.process is None:
                continue
            try:
                codes.append(worker.process.wait(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("worker_killed", worker=worker.index, reason="still running 9.5 s after the stop signal")
                worker.process.kill()
                codes.append(worker.process.wait())
        self._server.shutdown()
        return 0 if all(code == 0 for code in codes) else 1

    def _supervise(self, worker: _Worker, now: float) -> None:
        process = worker.process
        if process is not None and process.poll() in (None, 0):
            return  # running, or finished its finite source
        if process is not None:  # it just died: restart after a backoff that grows while it keeps dying
            if now - worker.started_at > 60:
                worker.restarts = 0
            delay = min(30.0, 2.0**worker.restarts)
            log.error("worker_died", worker=worker.index, code=process.returncode, restart_in_seconds=delay)
            worker.restarts += 1
            worker.restart_at = now + delay
            worker.process = None
        if now >= worker.restart_at:
            self._start(worker)

    # ------------------------------------------------------------------ probes

    def _ask(self, worker: _Worker, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=2) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()
        except OSError:
            return 0, b""

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = Request(environ).path
        if path == "/health":
            workers = [{"worker": w.index, "pid": None if w.process is None else w.process.pid,
                        "alive": w.process is not None and w.process.poll() is None, "restarts": w.restarts}
                       for w in self._workers]  # fmt: skip
            response = _json({"status": "ok", "workers": workers}, 200)
        elif path == "/readiness":
            response = self._readiness()
        elif path == "/metrics":
            registry = CollectorRegistry()
            registry.register(_Merged(self, self._workers))  # type: ignore[arg-type]
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            response = Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_LATEST)
        else:
            response = _json({"error": f"no such endpoint {path}; try /health, /readiness or /metrics"}, 404)
        return response(environ, start_response)

    def _readiness(self) -> Response:
        problems: dict[str, str] = {}
        serving = False
        for worker in self._workers:
            status, body = self._ask(worker, "/readiness")
            if status == 200:
                serving = True
                continue
            found = orjson.loads(body).get("problems", {}) if body else {"worker": "not answering"}
            for check, message in found.items():
                if check not in _STANDBY:
                    problems[f"worker{worker.index}.{check}"] = message
        if not serving:
            problems.setdefault("stream", "no worker serves a unit yet")
        return _json({"ready": not problems, "problems": problems}, 200 if not problems else 503)


class _Merged:
    """A collector: every worker's /metrics, each sample labelled with its worker."""

    def __init__(self, supervisor: Supervisor, workers: list[_Worker]) -> None:
        self._supervisor = supervisor
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for worker in self._workers:
            status, body = self._supervisor._ask(worker, "/metrics")
            if status != 200:
                continue
            for family in text_string_to_metric_families(body.decode()):
                into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    into.add_sample(sample.name, {**sample.labels, "worker": str(worker.index)}, sample.value)
        yield from merged.values()


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status=status, content_type="application/json")
