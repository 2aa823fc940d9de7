"""Every Firestore call answers within ``token_store.timeout_s`` when the server hangs (SIGSTOPped
emulator: the port still accepts, nothing replies). The client's own defaults wait 60 s (300 s for
reads and queries); a shutdown and ``admin tokens`` rely on the deadline instead.

Each operation runs on its own thread, all at once; a thread still blocked after ``GENEROUS_S`` (far
below the client's defaults, far above the 1 s deadline) fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters import gcp_emulators
from adapters.firestore_token_store import FirestoreTokenStore
from application.ports import Checkpoint, Lease, TokenStoreError
from domain.change_event import ClusterTime, ResumeToken

from .conftest import PROJECT

GENEROUS_S = 30.0
POSITION = Checkpoint(
    token=ResumeToken(data="8265000000000104"),
    cluster_time=ClusterTime(seconds=1_700_000_000, increment=1),
    updated_at=datetime(2025, 1, 1, tzinfo=UTC),
)


@pytest.fixture
def frozen(firestore_env: str, firestore_emulator: gcp_emulators.Emulator) -> Iterator[None]:
    firestore_emulator.pause()
    try:
        yield
    finally:
        firestore_emulator.resume()


def test_every_call_gives_up_within_its_deadline_on_a_hung_server(
    firestore_env: str, unique: str, frozen: None
) -> None:
    store = FirestoreTokenStore(project_id=PROJECT, collection=f"deadline_{unique}", timeout_s=1.0)
    lease = Lease("warehouse", "me", 1, datetime.now(UTC) + timedelta(seconds=30))
    calls: dict[str, Callable[[], Any]] = {
        "load": lambda: store.load("warehouse"),
        "save": lambda: store.save("warehouse", POSITION, generation=1),
        "acquire_lease": lambda: store.acquire_lease("warehouse", owner="me", ttl_seconds=30),
        "renew_lease": lambda: store.renew_lease(lease, ttl_seconds=30),
        "release_lease": lambda: store.release_lease(lease),
        "set_position": lambda: store.set_position("warehouse", POSITION),
        "delete": lambda: store.delete("warehouse"),
        "list": store.list,
    }
    errors: dict[str, BaseException | None] = {}

    def attempt(name: str, call: Callable[[], Any]) -> None:
        try:
            call()
            errors[name] = None
        except BaseException as error:  # recorded, asserted below
            errors[name] = error

    threads = [threading.Thread(target=attempt, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GENEROUS_S)
    assert [t for t in threads if t.is_alive()] == [], "a Firestore call outlived its deadline"
    for name in calls:
        error = errors[name]
        assert isinstance(error, TokenStoreError), (name, error)
        assert f"the Firestore emulator at {firestore_env}" in str(error), (name, error)
        assert "did not answer within 1 s" in str(error), (name, error)
