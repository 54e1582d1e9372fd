"""rag.calibration: signals, logistic fit, threshold choice, JSON round trip; rag.calibrate fit/report."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from rag import answering
from rag.calibrate import main as calibrate_main
from rag.calibration import (
    SIGNALS,
    ConfidenceModel,
    choose_threshold,
    confidence_rule,
    fit,
    packaged_model,
    refusal_metrics,
    signals,
)
from rag.errors import InputError
from rag.reader import make_output
from rag.types import Evidence

EVIDENCE = [
    Evidence("passage", "p1", "Paris is the capital of France.", 0.8, label="P1"),
    Evidence("passage", "p2", "Lyon is a city in France.", 0.5, label="P2"),
    Evidence("triple", "t1", "France | capital | Paris", 1.0, label="T1"),
]


def _row(good: bool, k: int) -> dict:
    # Right answers: confident and supported; wrong ones: unsure and unsupported (with some overlap).
    base = -0.1 - 0.05 * k if good else -2.0 - 0.1 * k
    return {"min_logprob": base, "mean_logprob": base / 2, "supported": float(good or k % 4 == 0),
            "agreement": 0.5 if good else 0.0, "top_score": 0.6, "kg_confidence": 0.0, "answer_words": 1.0,
            "polar": 0.0}


def test_signals_of_a_supported_answer() -> None:
    s = signals(make_output("Paris", [-0.2, -1.5]), EVIDENCE, kg_confidence=0.7)
    assert set(s) == set(SIGNALS)
    assert s["supported"] == 1.0 and s["agreement"] == 0.5 and s["top_score"] == 0.8
    assert s["min_logprob"] == -1.5 and s["kg_confidence"] == 0.7 and s["polar"] == 0.0
    assert signals(make_output("Berlin", [-0.2]), EVIDENCE)["supported"] == 0.0


def test_fit_orders_right_above_wrong_and_round_trips_as_json() -> None:
    rows = [_row(True, k) for k in range(20)] + [_row(False, k) for k in range(20)]
    labels = [1] * 20 + [0] * 20
    model = fit(rows, labels)
    right = [model.confidence(r) for r in rows[:20]]
    wrong = [model.confidence(r) for r in rows[20:]]
    assert min(right) > max(wrong)
    again = ConfidenceModel.from_json(model.to_json())
    assert again == model
    with pytest.raises(InputError):
        fit(rows[:3], [1, 1, 1])  # one class only
    with pytest.raises(InputError):
        model.confidence({"min_logprob": 0.0})


def test_threshold_respects_the_over_refusal_cap() -> None:
    confidences = [0.9, 0.8, 0.7, 0.2, None, 0.1, 0.3, 0.75]
    answerable = [True, True, True, True, False, False, False, False]
    t = choose_threshold(confidences, answerable, max_over_refusal=0.25)
    m = refusal_metrics(confidences, answerable, t)
    assert m["over_refusal"] <= 0.25
    assert m["refusal_recall"] == pytest.approx(0.75) and m["refusal_precision"] == pytest.approx(0.75)


def _fit_with_the_command(tmp_path, rows: list[dict]) -> tuple[ConfidenceModel, Path, Path]:
    """(the model `rag.calibrate fit` writes for these collected rows, the features file, the model file)."""
    features = tmp_path / "fit.jsonl"
    features.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model_path = tmp_path / "calibration.json"
    assert calibrate_main(["fit", "--features", str(features), "--out", str(model_path)]) == 0
    return ConfidenceModel.load(model_path), features, model_path


def test_calibrate_fit_and_report_commands(tmp_path) -> None:
    rows = []
    for k in range(20):
        rows.append({"id": f"a{k}", "answerable": True, "right": True, "reader_refused": False, "signals": _row(True, k)})
        rows.append({"id": f"u{k}", "answerable": False, "right": False, "reader_refused": k % 5 == 0,
                     "signals": _row(False, k)})
    model, features, model_path = _fit_with_the_command(tmp_path, rows)
    assert 0.0 <= model.threshold <= 1.0
    assert calibrate_main(["report", "--features", str(features), "--model", str(model_path)]) == 0
    assert calibrate_main(["report", "--features", str(features), "--model", str(tmp_path / "none.json")]) == 2


def test_an_instruction_supports_the_answer_it_states() -> None:
    output = make_output("Kirby Dick", [-0.3])
    assert signals(output, EVIDENCE)["supported"] == 0.0
    assert signals(output, EVIDENCE, instruction="Assume the director of X is Kirby Dick.")["supported"] == 1.0
    assert signals(output, EVIDENCE, instruction="Assume the director of X is Y.")["supported"] == 0.0


def test_a_yes_no_answer_is_supported_by_shown_passages_not_by_containing_yes() -> None:
    question = "Is Paris the capital of France?"
    polar = signals(make_output("Yes", [-0.3]), EVIDENCE, question=question)
    assert polar["supported"] == 1.0 and polar["polar"] == 1.0
    plain = signals(make_output("Yes", [-0.3]), EVIDENCE)  # the question is not yes/no
    assert plain["supported"] == 0.0 and plain["polar"] == 0.0
    triples_only = [e for e in EVIDENCE if e.aspect == "triple"]
    assert signals(make_output("Yes", [-0.3]), triples_only, question=question)["supported"] == 0.0


def test_an_answer_from_evidence_that_never_names_the_quoted_title_is_unsupported() -> None:
    output = make_output("Paris", [-0.2])
    assert signals(output, EVIDENCE, question='Who wrote "The Capital of the World"?')["supported"] == 0.0
    assert signals(output, EVIDENCE, question='Where is "the capital of France"?')["supported"] == 1.0
    # A user premise still supports what it states.
    assert signals(output, EVIDENCE, question='Who wrote "The Capital of the World"?',
                   instruction="Assume the author is Paris.")["supported"] == 1.0


def test_fit_by_default_refuses_answerable_questions_no_more_often_than_the_hand_set_rule(tmp_path) -> None:
    rows = []
    for k in range(20):
        rows.append({"id": f"a{k}", "answerable": True, "right": k % 3 != 0, "reader_refused": False,
                     "signals": _row(k % 3 != 0, k)})
        rows.append({"id": f"u{k}", "answerable": False, "right": False, "reader_refused": False,
                     "signals": _row(False, k)})
    model, _, _ = _fit_with_the_command(tmp_path, rows)
    answerable = [r["answerable"] for r in rows]
    hand = [answering.reader_confidence(make_output("answer", [r["signals"]["min_logprob"]]),
                                        bool(r["signals"]["supported"])) for r in rows]
    cap = refusal_metrics(hand, answerable, answering.HAND_SET_THRESHOLD)["over_refusal"]
    chosen = refusal_metrics([model.confidence(r["signals"]) for r in rows], answerable, model.threshold)
    assert chosen["over_refusal"] <= cap
    assert chosen["refusal_recall"] > 0  # it does refuse some unanswerable ones


def test_the_shipped_model_keeps_a_confident_answer_the_evidence_states_and_refuses_an_unsupported_guess() -> None:
    model = packaged_model()
    assert model is not None, "rag/resources/calibration.json should ship with the package"
    assert 0.0 < model.threshold < 1.0
    stated = {"min_logprob": -0.05, "mean_logprob": -0.02, "supported": 1.0, "agreement": 1.0, "top_score": 0.75,
              "kg_confidence": 0.0, "answer_words": math.log1p(2), "polar": 0.0}
    guess = {"min_logprob": -3.0, "mean_logprob": -1.5, "supported": 0.0, "agreement": 0.0, "top_score": 0.35,
             "kg_confidence": 0.0, "answer_words": math.log1p(6), "polar": 0.0}
    assert model.confidence(stated) >= model.threshold > model.confidence(guess)
    assert model.confidence(stated) > 0.5


def test_the_calibrated_model_is_used_only_for_the_reader_it_was_fitted_on() -> None:
    model = ConfidenceModel((0.0,) * len(SIGNALS), 2.0, (0.0,) * len(SIGNALS), (1.0,) * len(SIGNALS), 0.3,
                            reader="qwen")
    output = make_output("Paris", [-0.2])
    values = signals(output, EVIDENCE)
    calibrated = round(1 / (1 + math.exp(-2.0)), 4)
    assert confidence_rule(output, values, model, reader="qwen") == (calibrated, 0.3)
    hand = (answering.reader_confidence(output, True), answering.HAND_SET_THRESHOLD)
    assert confidence_rule(output, values, model, reader="another-model") == hand
    assert confidence_rule(output, values, model, reader=None) == hand  # a reader server or an adapter
    assert confidence_rule(output, values, None, reader="qwen") == hand
    # A server that sends no log-probabilities: the model would read them as certainty, so the hand rule decides.
    no_logprobs = make_output("Paris", [])
    assert confidence_rule(no_logprobs, signals(no_logprobs, EVIDENCE), model, reader="qwen")[1] == 0.4
    assert confidence_rule(output, values, model, reader="qwen", refusal_threshold=0.9) == (calibrated, 0.9)
    assert confidence_rule(output, values, replace(model, reader=""), reader=None) == (calibrated, 0.3)
