"""``/health``, ``/readiness`` and ``/metrics`` (CONTRACT §8), served by werkzeug in the worker process."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from application.health import HealthState


class ProbeApp:
    """A WSGI app over the worker's health state and its metrics registry."""

    def __init__(self, *, health: HealthState, registry: CollectorRegistry) -> None:
        self._health = health
        self._registry = registry

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._route(request.path)
        return response(environ, start_response)

    def _route(self, path: str) -> Response:
        if path == "/health":
            alive = self._health.alive
            body = {"status": "ok" if alive else "dead", "problems": self._health.failing if not alive else {}}
            return _json(body, 200 if alive else 503)
        if path == "/readiness":
            ready, problems = self._health.readiness()
            return _json({"ready": ready, "problems": problems}, 200 if ready else 503)
        if path == "/metrics":
            return Response(generate_latest(self._registry), status=200, content_type=CONTENT_TYPE_LATEST)
        return _json({"error": f"no such endpoint {path}; try /health, /readiness or /metrics"}, 404)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status=status, content_type="application/json")


class PortUnavailable(OSError):
    """The probe port is taken (or not ours to bind); the message names it and the fix."""


class ProbeServer:
    """Runs the probe app on a daemon thread; ``port`` 0 picks a free one (tests).

    The serving loop looks for a stop request every ``POLL_S``; socketserver's default (0.5 s) was
    up to half a second added to every exit. Twenty idle wake-ups a second cost nothing measurable."""

    POLL_S = 0.05

    def __init__(self, app: ProbeApp, *, host: str = "0.0.0.0", port: int = 8080) -> None:
        # Bind here, not in werkzeug: on a busy port werkzeug prints two lines of its own and exits.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise PortUnavailable(f"cannot listen on {host}:{port} ({reason}); set PORT to a free port") from None
        with listener:  # werkzeug serves a duplicate of it
            self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, fd=listener.fileno())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": self.POLL_S}, name="http-probes", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.port)

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
