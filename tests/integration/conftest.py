"""Session fixtures: the real Pub/Sub and Firestore emulators on free loopback ports.

They are started once per test session and stopped at the end. Where ``gcloud`` or an emulator
component is missing, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from adapters import gcp_emulators

PROJECT = "connector-test"


def _emulator(kind: gcp_emulators.Kind) -> Iterator[gcp_emulators.Emulator]:
    if not gcp_emulators.available(kind):
        pytest.skip(f"the {kind} emulator is not installed here (gcloud components install ...)")
    emulator = gcp_emulators.start(kind, project=PROJECT)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[gcp_emulators.Emulator]:
    yield from _emulator("pubsub")


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[gcp_emulators.Emulator]:
    yield from _emulator("firestore")


@pytest.fixture
def pubsub_env(pubsub_emulator: gcp_emulators.Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    return pubsub_emulator.host


@pytest.fixture
def firestore_env(firestore_emulator: gcp_emulators.Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    return firestore_emulator.host


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def emulator_env(*emulators: gcp_emulators.Emulator) -> dict[str, str]:
    env = dict(os.environ)
    for emulator in emulators:
        env.update(emulator.env)
    return env


@pytest.fixture
def deployment(tmp_path, unique, pubsub_emulator, firestore_emulator):  # type: ignore[no-untyped-def]
    """Topics, subscriptions, a Firestore collection and a config file of this test's own."""
    from .test_run_end_to_end import Deployment

    return Deployment(tmp_path, unique, pubsub_emulator, firestore_emulator)
