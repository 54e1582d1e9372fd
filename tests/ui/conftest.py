"""Fixtures for the UI tests: the sample index, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """The sample index: `$KGRAG_TEST_INDEX` when set (a prebuilt one), else built here with the real embedder."""
    prebuilt = os.environ.get("KGRAG_TEST_INDEX")
    if prebuilt:
        return Path(prebuilt)
    from indexes.build import BuildConfig, build_index

    out = tmp_path_factory.mktemp("ui-indexes") / "sample"
    build_index(
        out,
        BuildConfig(passages=(str(SAMPLE / "passages.jsonl"),), triples=(str(SAMPLE / "triples.tsv"),), progress=False),
    )
    return out
