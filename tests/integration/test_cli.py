"""`python -m rag ask --json` and `python -m rag eval` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.models import DEFAULT_READER
from support import REPO, SAMPLE, read_jsonl, subprocess_env



pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"question", "text", "refused", "confidence", "citations", "conflicts"}
METRIC_KEYS = {"em", "f1", "hits1", "refusal_precision", "refusal_recall", "over_refusal", "n", "n_answerable",
               "n_unanswerable", "seconds_per_question"}


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def test_ask_json_prints_one_answer_object(sample_index: Path) -> None:
    result = run_cli("ask", "--index", str(sample_index), "--json", "who stars in Hot to Trot")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    answer = json.loads(lines[0])
    assert CONTRACT_KEYS <= set(answer)
    assert answer["question"] == "who stars in Hot to Trot"
    assert not answer["refused"] and "John Candy" in answer["text"]
    assert any(c["kind"] == "triple" for c in answer["citations"])


def test_eval_writes_predictions_and_metrics(sample_index: Path, tmp_path: Path) -> None:
    # Seven KG questions and an unanswerable one; --limit 5 keeps the first five.
    questions = [q for q in read_jsonl(SAMPLE / "questions.jsonl") if q["id"].startswith("metaqa-1hop-01")][:7]
    assert len(questions) == 7
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    out = tmp_path / "eval"
    result = run_cli("eval", "--index", str(sample_index), "--questions", str(path), "--limit", "5", "--out", str(out),
                     "--preset", "kg-only")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert METRIC_KEYS <= set(printed) and printed["preset"] == "kg-only"
    assert printed["n"] == 5 and printed["n_answerable"] == 5
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved == {k: v for k, v in printed.items() if k != "preset"}
    assert json.loads((out / "components.json").read_text(encoding="utf-8"))["reader"] is None  # kg-only reads nothing
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == [q["id"] for q in questions[:5]]
    for row in rows:
        assert CONTRACT_KEYS <= set(row["prediction"]) and row["answers"]
    assert 0.0 <= printed["hits1"] <= 1.0 and printed["hits1"] >= 0.6


def test_eval_default_preset_limit(sample_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = run_cli("eval", "--index", str(sample_index), "--questions", str(SAMPLE / "questions.jsonl"),
                     "--limit", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["preset"] == "default" and printed["n"] == 2
    components = json.loads((out / "components.json").read_text(encoding="utf-8"))
    assert components["reader"] == DEFAULT_READER and components["gate"] is None
    assert len(read_jsonl(out / "predictions.jsonl")) == 2


def test_eval_bad_questions_file_exits_2(sample_index: Path, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "1", "question": "who?", "answers": []}\n{"id": "1", "question": "again", "answers": []}\n')
    result = run_cli("eval", "--index", str(sample_index), "--questions", str(path), "--preset", "kg-only")
    assert result.returncode == 2
    assert f"{path}:2" in result.stderr and "duplicate" in result.stderr
