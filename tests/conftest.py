"""Shared fixtures (shared functions are in ``helpers.py``). The Hub is never reached from tests:
offline mode is forced here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import REPO, require

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Real public data files live beside the project, never inside it.
SHARED_DATA = Path(os.environ.get("MATHRECIPES_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder: a skip without it, a failure under CI (``CI=true``)."""
    require(
        SHARED_DATA.is_dir(),
        f"the shared data folder {SHARED_DATA} (set MATHRECIPES_SHARED_DATA to its path)",
    )
    return SHARED_DATA


@pytest.fixture(scope="module")
def pkg_env(tmp_path_factory):
    """A copy of the package source on PYTHONPATH, editable by tests: ``(src, env)``."""
    src = tmp_path_factory.mktemp("pkg") / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = env["HF_DATASETS_OFFLINE"] = "1"
    return src, env
