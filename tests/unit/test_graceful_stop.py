"""``connector run``'s stop rules (entrypoints/shutdown.py) without a process to kill: the exit is
handed in, so "the process exits now with code N" is seen as SystemExit(N)."""

from __future__ import annotations

import signal
import threading

import pytest

from entrypoints.shutdown import GracefulStop

DEADLINE_S = 0.05


def exiting(code: int) -> None:
    raise SystemExit(code)


def stuck_until(release: threading.Event) -> str:
    release.wait()
    return "finished"


def test_the_work_result_comes_back_and_its_error_is_raised_on_the_caller() -> None:
    stop = GracefulStop(deadline_s=DEADLINE_S, exit_process=exiting)
    assert stop.run(lambda: 42, death=lambda: None) == 42

    def crash() -> None:
        raise RuntimeError("adapter bug")

    with pytest.raises(RuntimeError, match="adapter bug"):
        stop.run(crash, death=lambda: None)


def test_a_stop_requested_before_the_worker_exists_reaches_it() -> None:
    stop = GracefulStop(exit_process=exiting)
    stop.on_signal(signal.SIGTERM)
    requests: list[str] = []
    stop.attach(lambda: requests.append("stop"))
    assert requests == ["stop"]


def test_a_second_signal_exits_0_at_once() -> None:
    stop = GracefulStop(exit_process=exiting)
    stop.on_signal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited:
        stop.on_signal(signal.SIGINT)
    assert exited.value.code == 0


def test_a_stop_stuck_past_the_deadline_exits_0() -> None:
    stop, release = GracefulStop(deadline_s=DEADLINE_S, exit_process=exiting), threading.Event()
    stop.on_signal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exited:
            stop.run(lambda: stuck_until(release), death=lambda: None)
    finally:
        release.set()
    assert exited.value.code == 0


def test_a_dead_worker_stuck_past_the_deadline_exits_1_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    stop, release = GracefulStop(deadline_s=DEADLINE_S, exit_process=exiting), threading.Event()
    try:
        with pytest.raises(SystemExit) as exited:
            stop.run(lambda: stuck_until(release), death=lambda: "publishing failed: PermissionDenied")
    finally:
        release.set()
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: publishing failed: PermissionDenied\n"


def test_a_living_worker_that_was_not_asked_to_stop_has_no_deadline() -> None:
    stop, release = GracefulStop(deadline_s=DEADLINE_S, exit_process=exiting), threading.Event()
    threading.Timer(DEADLINE_S * 6, release.set).start()  # runs well past the deadline, then finishes
    assert stop.run(lambda: stuck_until(release), death=lambda: None) == "finished"
