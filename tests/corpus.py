"""Locate ``../shared/corpus`` (present in CI, absent in users' clones) for the tests that read it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("CONNECTOR_CORPUS_DIR", Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"shared corpus not present at {CORPUS} (only CI has it); set CONNECTOR_CORPUS_DIR")
    return path
