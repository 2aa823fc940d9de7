"""The ``connector`` executable's first lines: stop signals are caught before anything heavy loads.

Cloud Run may send SIGTERM at any moment, start-up included, and importing the Google client
libraries and building the container takes most of a second (several on a busy machine). With
Python's default action such a signal kills the process (exit -15) and a supervisor counts a crash.
So for ``connector run`` the very first thing is a handler that only *remembers* the signal; the run
command subscribes with :func:`listen` once it can drain, and a signal that came earlier stops it
before it reads anything (exit 0). Other commands keep the default behaviour (Ctrl-C interrupts).

Only the standard library is imported here, so the handler is in place within milliseconds.

When ``run`` has finished (final checkpoint written, exit code known) the process leaves through
:func:`_leave`: exit handlers run and the standard streams are flushed, but the interpreter's
teardown of every loaded module is skipped. With the Google client libraries loaded that teardown is
~0.3 s of CPU (over a second of wall time on a busy machine) with nothing left to protect.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_received: list[int] = []
_listener: Callable[[int], None] | None = None


def _on_signal(signum: int, _: FrameType | None) -> None:
    listener = _listener
    if listener is not None:
        listener(signum)
        return
    if _received:  # a second signal before the worker exists: nothing to drain or checkpoint yet
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    _received.append(signum)


def install() -> None:
    """Remember SIGTERM/SIGINT from now on. Idempotent.

    The signals are also unblocked: a parent that blocked them across fork/exec (some init systems
    and supervisors do) would otherwise hold them back until it is too late to drain cleanly."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not _on_signal:
            signal.signal(signum, _on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def listen(callback: Callable[[int], None]) -> None:
    """Route stop signals to ``callback`` from now on; one that arrived earlier is delivered at once.

    Handlers run on the main thread between bytecodes, and this runs on the main thread too: a signal
    that lands after ``_listener`` is set goes straight to ``callback``, one that landed before is in
    ``_received`` and delivered here, so none is lost and none is delivered twice."""
    global _listener
    install()
    _listener = callback
    pending = list(_received)
    _received.clear()
    for signum in pending:
        callback(signum)


def _subcommand(argv: list[str]) -> str | None:
    """The first word that is not an option (the top-level group's options take no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _leave(status: object) -> None:
    """Exit with ``SystemExit`` status ``status`` as ``sys.exit`` would, minus the module teardown."""
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:  # sys.exit("message"): printed, exit 1
        print(status, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # logging.shutdown and friends, in the usual order
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said there
            stream.flush()
    os._exit(code)


def main() -> None:
    """Console-script entry point (``connector``)."""
    run = _subcommand(sys.argv[1:]) == "run"
    if run:
        install()
    from entrypoints.cli import main as cli_main

    if not run:
        cli_main()
        return
    try:
        cli_main()
    except SystemExit as done:  # click ends every command this way, success included
        _leave(done.code)


if __name__ == "__main__":  # ``python -m entrypoints.launch``: use the one importable copy of this module's state
    from entrypoints import launch

    launch.main()
