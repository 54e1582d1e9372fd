"""Fixtures for the UI tests: the session's sample index, copied under a folder of indexes for the picker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`$KGRAG_TEST_INDEX` when set (a prebuilt one), else a copy of the session's sample index (built once)."""
    prebuilt = os.environ.get("KGRAG_TEST_INDEX")
    if prebuilt:
        return Path(prebuilt)
    built = request.getfixturevalue("sample_build")
    out = tmp_path_factory.mktemp("ui-indexes") / "sample"
    shutil.copytree(built.path, out)
    return out
