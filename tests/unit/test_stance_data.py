"""The embedded stance training data (data/stance/, what `make install` trains the stance model on) parses, gives
balanced yes/no examples, and holds none of the ConflictQA lines the evaluation sets come from.

Regenerate with scripts/make_stance_data.py (see data/stance/ATTRIBUTION.md)."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from rag.stance import conflictqa_examples

STANCE_DATA = Path(__file__).resolve().parents[2] / "data" / "stance"


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (STANCE_DATA / name).read_text(encoding="utf-8").splitlines()]


def test_the_examples_are_balanced_and_every_passage_is_used() -> None:
    questions, passages = _jsonl("questions.jsonl"), {p["id"]: p for p in _jsonl("passages.jsonl")}
    examples = conflictqa_examples(questions, passages, per_label=2)
    labels = Counter(e.label for e in examples)
    assert labels["yes"] == labels["no"] >= 1000 and set(labels) == {"yes", "no"}
    assert {e.text for e in examples} == {p["text"] for p in passages.values()}


def test_no_evaluation_line_is_embedded() -> None:
    """scripts/make_conflictqa.py builds the ConflictQA evaluation sets from the first lines of the prepared file,
    whose ids number the lines; train-stance skips the first 200 by default."""
    numbers = [int(re.fullmatch(r"conflictqa-(\d+)", q["id"]).group(1)) for q in _jsonl("questions.jsonl")]
    assert min(numbers) > 200 and len(set(numbers)) == len(numbers)


def test_neither_paragraphs_name_their_source() -> None:
    rows = _jsonl("neither.jsonl")
    assert rows and {r["metadata"]["dev_set"] for r in rows} <= {"hotpotqa", "nq", "musique"}
    assert all(isinstance(r["text"], str) and r["text"].strip() for r in rows)
    attribution = (STANCE_DATA / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Apache-2.0" in attribution and "CC BY-SA" in attribution
