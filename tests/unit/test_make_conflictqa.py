"""scripts/make_conflictqa.py: claims mapped to yes/no by negation, the planted side chosen against the truth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("make_conflictqa", REPO / "scripts" / "make_conflictqa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _question(qid: str, truth: str, memory: str, counter: str) -> dict:
    return {"id": qid, "question": f"{qid}?", "answers": [truth], "per_model": {"chatgpt": {
        "memory_answer": memory, "counter_answer": counter,
        "parametric_memory_id": f"{qid}-p", "counter_memory_id": f"{qid}-c"}}}


def test_polarity_by_negation() -> None:
    polarity = _module().polarity
    assert polarity("Land owners did not elect their rulers.", "Land owners elected their rulers.") == "no"
    assert polarity("You can buy Casio products at Petco.", "You cannot buy Casio products at Petco.") == "yes"
    assert polarity("It isn't red.", "It is red.") == "no"
    assert polarity("It is impossible.", "It is possible.") is None  # negation does not tell them apart


def test_the_planted_passage_is_the_side_that_disagrees_with_the_truth() -> None:
    questions = [
        _question("q1", "no", "Rulers were not elected.", "Rulers were elected."),  # memory right
        _question("q2", "yes", "Peas are not enough.", "Peas are enough."),  # memory wrong
        _question("q3", "yes", "It is impossible.", "It is possible."),  # unmappable: skipped
    ]
    passages = {f"{q}-{s}": {"id": f"{q}-{s}", "text": f"text {q} {s}"} for q in ("q1", "q2", "q3") for s in "pc"}
    rows, texts = _module().make_set(questions, passages, "chatgpt", "all", 10)
    assert [(r["id"], r["answers"], r["target"], r["planted_passage_id"]) for r in rows] == [
        ("q1-chatgpt", ["no"], "yes", "q1-c"), ("q2-chatgpt", ["yes"], "no", "q2-p")]
    assert {t["id"] for t in texts} == {"q1-p", "q1-c", "q2-p", "q2-c"}
    _, control = _module().make_set(questions, passages, "chatgpt", "all", 10, sides="true")
    assert [t["id"] for t in control] == ["q1-p", "q2-c"]
