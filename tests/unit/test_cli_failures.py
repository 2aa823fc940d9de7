"""Every command with each dependency missing or down: exit 1 or 2, one ``error:`` line on stderr, no
traceback, and an answer within the subprocess timeout (CONTRACT §3 and §9).

The cases run as real subprocesses, side by side in a thread pool (a module fixture), so the table
costs about as long as its slowest row; each row is then its own test. The deadlines of the
unreachable-server rows are lowered to 2 s to keep it quick, except one row that keeps the default
(10 s) to show that ``admin tokens list`` answers within its promise instead of retrying for minutes.

``connector run`` retries an unreachable MongoDB, Pub/Sub or Firestore by design (WARNING lines,
readiness 503): those rows belong to the runtime's tests. Here ``run`` meets only what it cannot
retry its way out of: bad configuration, a malformed URI, no credentials, an unknown document type.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from attrs import frozen

from adapters.gcp_emulators import free_port

CONNECTOR = [sys.executable, "-m", "entrypoints.launch"]
GENEROUS_S = 90  # a loaded 2-core machine; the promises (15 s for admin/check) are the README's
VALID = '{"_schema_version": "v1", "product_id": "p", "warehouse_id": "w", "quantity": 1, "last_updated": "2024-03-20T10:00:00Z"}\n'  # noqa: E501


@frozen
class Case:
    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    code: int
    says: str  # a fragment the one line must contain: the problem or the fix


def _prepare(tmp: Path) -> None:
    (tmp / "docs.jsonl").write_text(VALID)
    (tmp / "events.jsonl").write_text("")
    (tmp / "home").mkdir()


def _cases(tmp: Path, busy_port: int = 0) -> list[Case]:
    """The table; the files it names are written by :func:`_prepare`."""
    docs = tmp / "docs.jsonl"
    events = tmp / "events.jsonl"
    missing = str(tmp / "missing.jsonl")
    folder = str(tmp)
    closed = f"127.0.0.1:{free_port()}"
    down = {"FIRESTORE_EMULATOR_HOST": closed, "PUBSUB_EMULATOR_HOST": closed}
    quick = {"CONNECTOR_TOKEN_STORE__TIMEOUT_S": "2", "CONNECTOR_PUBSUB__ADMIN_TIMEOUT_S": "2"}
    memory = {"CONNECTOR_TOKEN_STORE__BACKEND": "memory", "CONNECTOR_PUBSUB__BACKEND": "memory"}
    home = tmp / "home"
    # no ADC file, no gcloud config, and (NO_GCE_CHECK) no metadata server even when CI runs on a GCE VM
    no_credentials = {
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home),
        "GOOGLE_CLOUD_PROJECT": "p",
        "NO_GCE_CHECK": "true",
    }
    mongo_down = {"CONNECTOR_MONGODB__URI": f"mongodb://{closed}/?serverSelectionTimeoutMS=500"}
    bad_uri = {"CONNECTOR_MONGODB__URI": "mongodb://localhost:notaport/"}
    jsonl = {"CONNECTOR_SOURCE": "jsonl", "CONNECTOR_JSONL__PATH": str(events), "PORT": "0"}
    unknown_type = {"CONNECTOR_STREAMS": "[{collection: inventory, topic: t, document_type: nosuchtype}]"}
    firestore_fix = f"Firestore emulator at {closed}"
    credentials_fix = "no Google credentials found"
    cases = [
        # Firestore and Pub/Sub: nothing listens where the emulator variables point
        Case("tokens list, emulator down, default deadline", ("admin", "tokens", "list"), down, 1, firestore_fix),
        Case("tokens get, emulator down", ("admin", "tokens", "get", "warehouse"), {**down, **quick}, 1, firestore_fix),
        Case(
            "tokens set, emulator down",
            ("admin", "tokens", "set", "warehouse", "--at", "2024-03-20T10:00:00Z"),
            {**down, **quick},
            1,
            firestore_fix,
        ),
        Case(
            "tokens reset, emulator down",
            ("admin", "tokens", "reset", "warehouse", "--yes"),
            {**down, **quick},
            1,
            firestore_fix,
        ),
        Case(
            "backfill, emulator down",
            ("backfill", "--collection", "inventory", "--from-file", str(docs)),
            {**down, **quick},
            1,
            firestore_fix,
        ),
        # no credentials and no emulator: Google's client libraries cannot even be built
        Case("tokens list, no credentials", ("admin", "tokens", "list"), no_credentials, 2, credentials_fix),
        Case(
            "tokens set, no credentials",
            ("admin", "tokens", "set", "w", "--at", "2024-03-20T10:00:00Z"),
            no_credentials,
            2,
            credentials_fix,
        ),
        Case(
            "backfill, no credentials",
            ("backfill", "--collection", "inventory", "--from-file", str(docs)),
            no_credentials,
            2,
            credentials_fix,
        ),
        Case("run, no credentials", ("run",), {**no_credentials, **jsonl}, 2, credentials_fix),
        # MongoDB: nobody listens, or the URI is not one
        Case(
            "backfill, MongoDB down",
            ("backfill", "--collection", "inventory"),
            {**memory, **mongo_down},
            1,
            "MongoDB did not answer in time",
        ),
        Case(
            "backfill, bad URI", ("backfill", "--collection", "inventory"), {**memory, **bad_uri}, 2, "fix mongodb.uri"
        ),
        Case("run, bad URI", ("run",), {**memory, **bad_uri, "PORT": "0"}, 2, "fix mongodb.uri"),
        # unknown document types and versions
        Case("schemas show, unknown type", ("admin", "schemas", "show", "nosuchtype"), {}, 2, "nosuchtype"),
        Case("schemas show, unknown version", ("admin", "schemas", "show", "inventory", "v9"), {}, 2, "v9"),
        Case(
            "schemas validate, unknown type",
            ("admin", "schemas", "validate", "nosuchtype", str(docs)),
            {},
            2,
            "nosuchtype",
        ),
        Case(
            "schemas migrate, unknown type",
            ("admin", "schemas", "migrate", "nosuchtype", str(docs)),
            {},
            2,
            "nosuchtype",
        ),
        Case(
            "schemas migrate, unknown version",
            ("admin", "schemas", "migrate", "inventory", str(docs), "--to", "v9"),
            {},
            2,
            "v9",
        ),
        Case(
            "schemas path, unknown type", ("admin", "schemas", "path", "nosuchtype", "v1", "v2"), {}, 2, "unknown type"
        ),
        Case(
            "schemas path, unknown version",
            ("admin", "schemas", "path", "inventory", "v1", "v9"),
            {},
            2,
            "unknown version",
        ),
        Case("replay, unknown type in streams", ("replay", str(events)), unknown_type, 2, "nosuchtype"),
        Case("run, unknown type in streams", ("run",), {**memory, **jsonl, **unknown_type}, 2, "nosuchtype"),
        Case(
            "backfill, collection not in streams",
            ("backfill", "--collection", "nosuch", "--from-file", str(docs)),
            memory,
            2,
            "not in streams",
        ),
        # files that are missing or cannot be read
        Case("replay, missing file", ("replay", missing), {}, 2, "missing.jsonl"),
        Case("replay, a directory", ("replay", folder), {}, 2, "directory"),
        Case(
            "schemas validate, missing file",
            ("admin", "schemas", "validate", "inventory", missing),
            {},
            2,
            "missing.jsonl",
        ),
        Case(
            "schemas migrate, missing file",
            ("admin", "schemas", "migrate", "inventory", missing),
            {},
            2,
            "missing.jsonl",
        ),
        Case(
            "backfill, missing file",
            ("backfill", "--collection", "inventory", "--from-file", missing),
            memory,
            2,
            "missing.jsonl",
        ),
        *(
            Case(
                f"{command[0] if command[0] != 'admin' else ' '.join(command)}, missing config",
                (*command, "--config", missing),
                memory,
                2,
                "missing.jsonl",
            )
            for command in (
                ("run",),
                ("replay", str(events)),
                ("admin", "tokens", "list"),
                ("admin", "schemas", "list"),
                ("backfill", "--collection", "inventory"),
            )
        ),
        Case("run, config is a directory", ("run", "--config", folder), memory, 2, "directory"),
        # check prints its table on stdout instead: every failing row is one line naming the server
        Case(
            "check, everything down",
            ("check",),
            {**down, **quick, **mongo_down},
            1,
            f"mongodb    FAIL  unreachable|topics     FAIL  the Pub/Sub emulator at {closed}|firestore  FAIL  the "
            + firestore_fix,
        ),
        Case(
            "check, no credentials",
            ("check",),
            {**no_credentials, **mongo_down},
            1,
            f"topics     FAIL  {credentials_fix}|firestore  FAIL  {credentials_fix}",
        ),
        # the probe port is taken
        Case("run, port busy", ("run",), {**memory, **jsonl, "PORT": str(busy_port)}, 1, "set PORT to a free port"),
        # plain usage errors print the same way
        Case("replay, no argument", ("replay",), {}, 2, "Missing argument"),
        Case("simulate, negative count", ("simulate", "--count", "-1"), {}, 2, "--count"),
        Case("tokens set, neither --token nor --at", ("admin", "tokens", "set", "w"), memory, 2, "exactly one of"),
        Case("unknown command", ("nosuchcommand",), {}, 2, "nosuchcommand"),
    ]
    return cases


_ISOLATED = ("GOOGLE_APPLICATION_CREDENTIALS", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "CONNECTOR_CONFIG")


def _run(case: Case, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATED and not k.startswith("CONNECTOR_")}
    return subprocess.run(
        [*CONNECTOR, *case.args],
        env={**env, **case.env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=GENEROUS_S,
        check=False,
    )


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Case, subprocess.CompletedProcess[str]]]]:
    tmp = tmp_path_factory.mktemp("failures")
    _prepare(tmp)
    root = Path(__file__).resolve().parents[2]
    with socket.create_server(("0.0.0.0", 0)) as busy, ThreadPoolExecutor(max_workers=6) as pool:
        cases = _cases(tmp, busy_port=busy.getsockname()[1])
        results = list(pool.map(lambda case: _run(case, root), cases))
    yield {case.name: (case, result) for case, result in zip(cases, results, strict=True)}


@pytest.mark.parametrize("name", [case.name for case in _cases(Path("/unused"))])
def test_one_error_line_and_the_exit_code(
    name: str, outcomes: dict[str, tuple[Case, subprocess.CompletedProcess[str]]]
) -> None:
    case, result = outcomes[name]
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == case.code, result.stderr
    if case.args[0] == "check":
        rows = result.stdout.splitlines()
        assert not lines, result.stderr
        for row in case.says.split("|"):
            assert any(line.startswith(row) for line in rows), (row, result.stdout)
        return
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert case.says in lines[0], lines[0]
