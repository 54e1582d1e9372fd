"""Importing the packages must not import the heavy model libraries (they load lazily, when used)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss")


@pytest.mark.parametrize(
    "modules",
    [
        "rag, kg, indexes",
        "rag.pipeline",
        "rag.evaluate, rag.answering, rag.config, rag.reader, rag.models",
        "indexes.build, indexes.store, indexes.readers",
        "kg.retrieval, kg.linking, kg.paths, kg.graph",
        "rag.train_reader, rag.preferences",
    ],
)
def test_import_does_not_load_heavy_libraries(modules: str) -> None:
    code = (
        f"import sys, json\nimport {modules}\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], f"import {modules} loaded heavy modules"


def test_rag_exposes_pipeline_lazily() -> None:
    code = (
        "import sys, rag\nassert 'rag.pipeline' not in sys.modules\n"
        "from rag import QAPipeline\nassert 'rag.pipeline' in sys.modules\nprint(QAPipeline.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "QAPipeline"
