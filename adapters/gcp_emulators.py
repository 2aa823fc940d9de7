"""Start and stop the Pub/Sub and Firestore emulators that ``gcloud`` ships (tests and ``make run``).

Each emulator runs in its own process group on a free loopback port; ``stop`` kills the whole group,
because ``gcloud`` starts a Java child that would otherwise outlive it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from attrs import define

Kind = Literal["pubsub", "firestore"]
_COMMANDS: dict[Kind, list[str]] = {
    "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start"],
    "firestore": ["gcloud", "emulators", "firestore", "start"],
}
_ENV: dict[Kind, str] = {"pubsub": "PUBSUB_EMULATOR_HOST", "firestore": "FIRESTORE_EMULATOR_HOST"}


class EmulatorUnavailable(Exception):
    """``gcloud`` or the emulator component is missing, or the emulator did not start in time."""


class StartCancelled(Exception):
    """The caller's ``cancelled()`` turned true while the emulator started; it has been stopped."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def available(kind: Kind) -> bool:
    """True when gcloud is installed with this emulator's component."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return False
    sdk = Path(os.path.realpath(gcloud)).parent.parent
    component = {"pubsub": "pubsub-emulator", "firestore": "cloud-firestore-emulator"}[kind]
    return any((root / "platform" / component).exists() for root in (sdk, sdk / "lib" / "google-cloud-sdk"))


@define
class Emulator:
    kind: Kind
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {_ENV[self.kind]: self.host}

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group, the Java server included, and return once it is gone.

        The group outlives ``gcloud`` (the Java child is reparented), so it is signalled even when the
        wrapper has already exited, and waited for member by member: ``make run`` promises that no
        emulator is left behind, and a test checks exactly that right after it returns."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # members of a group we do not parent: no event to await
        if _group_alive(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP the whole emulator (an outage that keeps the port open, as a hung server does)."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)


def start(
    kind: Kind,
    *,
    port: int | None = None,
    project: str = "local-project",
    timeout: float = 60.0,
    cancelled: Callable[[], bool] = lambda: False,
) -> Emulator:
    """Start an emulator and return once it accepts connections.

    ``cancelled`` is polled while it starts (``make run``'s Ctrl-C): a signal handler that only sets a
    flag cannot interrupt ``Popen`` half-way, which would leave an emulator nobody knows of."""
    if not available(kind):
        raise EmulatorUnavailable(f"the {kind} emulator is not installed (gcloud components install {kind}-emulator)")
    port = port or free_port()
    host = f"127.0.0.1:{port}"
    command = [*_COMMANDS[kind], f"--host-port={host}"]
    if kind == "pubsub":
        command.append(f"--project={project}")
    log_file = tempfile.NamedTemporaryFile(prefix=f"{kind}-emulator-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    emulator = Emulator(kind=kind, host=host, process=process, log_path=Path(log_file.name))
    ready = "Server started" if kind == "pubsub" else "Dev App Server is now running"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if cancelled():
                raise StartCancelled(f"the {kind} emulator's start was cancelled")
            if process.poll() is not None:
                raise EmulatorUnavailable(f"the {kind} emulator exited: {_tail(emulator.log_path)}")
            if ready in emulator.log_path.read_text(errors="replace") and _accepts(port):
                return emulator
            time.sleep(0.2)  # polling a child process's log: there is no event to await
    except BaseException:  # Ctrl-C while it starts: the caller never gets it to stop, so stop it here
        emulator.stop()
        raise
    emulator.stop()
    raise EmulatorUnavailable(f"the {kind} emulator did not start within {timeout:.0f} s: {_tail(emulator.log_path)}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal still exists
        return True
    return True


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) if lines else "(no output)"
