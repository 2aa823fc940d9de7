"""The README's Cloud Run commands refer to files that exist and say what they do (no Docker engine or
gcloud project is available here, so the commands themselves are not run)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_cloud_build_builds_the_shipped_dockerfile_and_pushes_what_it_tagged() -> None:
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    (step,) = build["steps"]
    args = step["args"]
    assert args[0] == "build" and args[-1] == "."  # the context is the repository root, as submitted
    dockerfile = args[args.index("--file") + 1]
    assert (ROOT / dockerfile).is_file(), dockerfile
    tag = args[args.index("--tag") + 1]
    assert build["images"] == [tag]
    assert re.fullmatch(r"\$\{_[A-Z]+\}", tag), "the image name is the caller's substitution"
    readme = (ROOT / "README.md").read_text()
    submit = re.search(r"gcloud builds submit (.*)", readme)
    assert submit is not None
    assert "--config cloudbuild.yaml" in submit.group(1) and f"{tag[2:-1]}=" in submit.group(1)
    assert " -f " not in submit.group(1)  # gcloud builds submit has no -f
