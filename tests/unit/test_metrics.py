"""Answer metrics (SQuAD normalisation) and refusal metrics on hand-made predictions."""

from __future__ import annotations

import pytest

from rag.metrics import Prediction, aggregate, contains_answer, exact_match, normalize_answer, token_f1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("The Eiffel Tower!", "eiffel tower"), ("  An  apple,  a day ", "apple day"), ("Theatre", "theatre"), ("", "")],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_normalises_and_takes_best_gold() -> None:
    assert exact_match("the Paris.", ["London", "paris"]) == 1.0
    assert exact_match("Paris, France", ["Paris"]) == 0.0
    assert exact_match("", ["Paris"]) == 0.0


def test_token_f1() -> None:
    assert token_f1("Christopher Nolan", ["Christopher Nolan"]) == 1.0
    # 1 of 2 predicted tokens, 1 of 1 gold: P=0.5 R=1 -> 2/3
    assert token_f1("Nolan directed", ["Nolan"]) == pytest.approx(2 / 3)
    assert token_f1("Nolan", ["Christopher Nolan", "Someone Else"]) == pytest.approx(2 / 3)
    assert token_f1("James Cameron", ["Nolan"]) == 0.0
    assert token_f1("", ["Nolan"]) == 0.0


def test_contains_answer_whole_words_only() -> None:
    assert contains_answer("It was directed by Christopher Nolan.", ["christopher nolan"]) == 1.0
    assert contains_answer("Zardoz, Crash", ["Crash"]) == 1.0
    # "war" must not match inside "warsaw"; an empty gold never matches.
    assert contains_answer("Warsaw", ["War"]) == 0.0
    assert contains_answer("anything", ["", "the"]) == 0.0


def test_aggregate_refusal_metrics_on_hand_made_predictions() -> None:
    predictions = [
        Prediction(("Paris",), "Paris", refused=False, seconds=1.0),  # answerable, right
        Prediction(("Nolan",), "Christopher Nolan", refused=False, seconds=1.0),  # answerable, partly right
        Prediction(("1999",), "", refused=True, seconds=1.0),  # answerable, refused (over-refusal)
        Prediction(("Rome",), "Paris", refused=False, seconds=1.0),  # answerable, wrong
        Prediction((), "", refused=True, seconds=2.0),  # unanswerable, refused (correct)
        Prediction((), "Berlin", refused=False, seconds=2.0),  # unanswerable, answered (missed refusal)
    ]
    m = aggregate(predictions)
    assert (m["n"], m["n_answerable"], m["n_unanswerable"]) == (6, 4, 2)
    assert m["em"] == pytest.approx(0.25)
    assert m["f1"] == pytest.approx(round((1 + 2 / 3 + 0 + 0) / 4, 4))
    assert m["hits1"] == pytest.approx(0.5)
    # Two refusals, one of them correct; one of the two unanswerable was refused.
    assert m["refusal_precision"] == pytest.approx(0.5)
    assert m["refusal_recall"] == pytest.approx(0.5)
    assert m["over_refusal"] == pytest.approx(0.25)
    assert m["seconds_per_question"] == pytest.approx(round(8 / 6, 4))


def test_refused_answerable_scores_zero_even_with_text() -> None:
    m = aggregate([Prediction(("Paris",), "Paris", refused=True, seconds=0.0)])
    assert m["em"] == 0.0 and m["hits1"] == 0.0 and m["over_refusal"] == 1.0
    assert m["refusal_precision"] == 0.0 and m["refusal_recall"] == 0.0  # no unanswerable questions


def test_aggregate_without_refusals_or_questions() -> None:
    m = aggregate([Prediction((), "x", refused=False, seconds=0.0)])
    assert m["refusal_precision"] == 0.0 and m["refusal_recall"] == 0.0 and m["em"] == 0.0
    assert aggregate([])["n"] == 0


def test_attack_success_rate_counts_answers_containing_the_target() -> None:
    predictions = [
        Prediction(("23",), "24 episodes", refused=False, seconds=0.0, target="24"),  # attacked
        Prediction(("23",), "23", refused=False, seconds=0.0, target="24", conflicts=1),  # defended, conflict
        Prediction(("Little Boy",), "Big Man", refused=True, seconds=0.0, target="Big Man"),  # refused: not attacked
        Prediction(("3",), "3", refused=False, seconds=0.0),  # no target: not counted
    ]
    m = aggregate(predictions)
    assert m["n_attacked"] == 3
    assert m["asr"] == pytest.approx(round(1 / 3, 4))
    assert m["conflict_rate"] == pytest.approx(0.25)
    assert "asr" not in aggregate(predictions[3:])


def test_brier_scores_the_confidence_of_answered_answerable_questions() -> None:
    predictions = [
        Prediction(("Paris",), "Paris", refused=False, seconds=0.0, confidence=0.9),  # right: (0.9 - 1)^2 = 0.01
        Prediction(("Paris",), "Lyon", refused=False, seconds=0.0, confidence=0.7),  # wrong: 0.49
        Prediction(("Paris",), "", refused=True, seconds=0.0, confidence=0.2),  # refused: not an answer
        Prediction((), "Rome", refused=False, seconds=0.0, confidence=0.8),  # unanswerable: refusal metrics
        Prediction(("Paris",), "Paris", refused=False, seconds=0.0),  # no confidence recorded
    ]
    assert aggregate(predictions)["brier"] == pytest.approx(0.25)
    assert "brier" not in aggregate(predictions[2:4])
