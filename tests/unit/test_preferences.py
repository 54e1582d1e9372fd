"""Preference pairs for DPO (rag.preferences) and the evaluation scoring of rag.train_reader: pure logic."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rag.errors import InputError
from rag.preferences import (
    PREFS_FILE,
    PreferencePair,
    PrefsSpec,
    build_pairs,
    plausible_span,
    read_prefs,
    split_half,
    write_prefs,
)
from rag.prompt import REFUSAL, build_messages
from rag.train_reader import EvalItem, TrainConfig, _Out, heldout_items, main, score
from rag.types import Evidence


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """A tiny prepared-data folder: 8 SQuAD2 questions, 4 PoisonedRAG questions, 2 RGB counterfactual ones."""
    text = "In 1066 William of Normandy defeated Harold Godwinson at Hastings. The Normans ruled England."
    _write(tmp_path / "squad2" / "passages.jsonl", [{"id": "sq-p0", "text": text}])
    squad = []
    for n in range(8):
        impossible = n % 4 in (1, 2)  # both halves get answerable and unanswerable questions
        squad.append({
            "id": f"sq-{n}", "question": f"Who defeated Harold at Hastings {n}?" if not impossible
            else f"Who did Harold defeat in {n}?", "answers": [] if impossible else ["William of Normandy"],
            "is_impossible": impossible, "gold_passage_ids": ["sq-p0"],
        })
    _write(tmp_path / "squad2" / "questions.jsonl", squad)
    pr_passages, pr_questions = [], []
    for n in range(4):
        pr_passages.append({"id": f"pr-{n}-clean0", "text": f"The clean fact number {n} is 23."})
        for k in range(5):
            pr_passages.append({"id": f"pr-{n}-adv{k}", "text": f"Poison {k}: the fact number {n} is 24."})
        pr_questions.append({
            "id": f"pr-{n}", "question": f"What is fact {n}?", "answers": ["23"], "target": "24",
            "clean_passage_ids": [f"pr-{n}-clean0"], "poisoned_passage_ids": [f"pr-{n}-adv{k}" for k in range(5)],
        })
    _write(tmp_path / "poisonedrag" / "passages.jsonl", pr_passages)
    _write(tmp_path / "poisonedrag" / "questions.jsonl", pr_questions)
    _write(tmp_path / "rgb_counterfactual" / "passages.jsonl", [
        {"id": "rgb-1-wrong0", "text": "Apple bought WhatsApp."}, {"id": "rgb-2-wrong0", "text": "Apple bought X."},
    ])
    _write(tmp_path / "rgb_counterfactual" / "questions.jsonl", [
        {"id": "rgb-1", "question": "Who bought WhatsApp?", "answers": ["Facebook"], "target": "Apple",
         "counterfactual_passage_ids": ["rgb-1-wrong0"]},
        {"id": "rgb-2", "question": "Who bought X?", "answers": ["Twitter"], "target": "Apple",
         "counterfactual_passage_ids": ["rgb-2-wrong0"]},
    ])
    return tmp_path


def test_split_half_is_odd_lines_for_training() -> None:
    rows = [{"n": n} for n in range(1, 6)]  # line numbers 1..5
    assert [r["n"] for r in split_half(rows, "train")] == [1, 3, 5]
    assert [r["n"] for r in split_half(rows, "heldout")] == [2, 4]
    with pytest.raises(InputError):
        split_half(rows, "test")


def test_plausible_span_picks_the_asked_kind_not_in_the_question() -> None:
    text = "In 1066 William of Normandy defeated Harold Godwinson at Hastings."
    rng = random.Random(0)
    assert plausible_span("When did William win?", text, rng) == "1066"
    span = plausible_span("Who did Harold Godwinson fight?", text, rng)
    assert span in {"William of Normandy", "Hastings", "In"} and span != "Harold Godwinson"
    assert plausible_span("How many ships?", "No numbers here.", rng) is None


def test_pair_rejects_identical_or_empty_answers() -> None:
    ev = (Evidence("passage", "p", "text", 1.0),)
    with pytest.raises(InputError):
        PreferencePair("poisoning", "x", "q?", ev, "Paris", "paris")
    with pytest.raises(InputError):
        PreferencePair("poisoning", "x", "q?", ev, " ", "Rome")
    with pytest.raises(InputError):
        PreferencePair("nonsense", "x", "q?", ev, "Paris", "Rome")


def test_build_pairs_uses_training_half_and_reader_prompt(data: Path, tmp_path: Path) -> None:
    pairs = build_pairs(PrefsSpec(data=str(data), squad2_each=5, poisoning=10, instruction=5, counterfactual=5))
    kinds = {p.kind for p in pairs}
    assert {"honesty-unanswerable", "honesty-answerable", "poisoning", "evidence-over-memory"} <= kinds
    heldout_ids = {"sq-1", "sq-3", "sq-5", "sq-7", "pr-1", "pr-3", "rgb-2"}
    assert not any(p.id.split("-p")[0].removesuffix("-instr") in heldout_ids for p in pairs)
    for pair in pairs:
        if pair.kind == "honesty-unanswerable":
            assert pair.chosen == REFUSAL and pair.rejected != REFUSAL
        if pair.kind == "honesty-answerable":
            assert pair.rejected == REFUSAL
        if pair.kind == "poisoning":
            assert (pair.chosen, pair.rejected) == ("23", "24")
            sources = [e.source_id for e in pair.evidence]
            assert sum("clean" in s for s in sources) == 1 and len(sources) in (3, 5)
        if pair.kind == "evidence-over-memory":
            assert (pair.chosen, pair.rejected) == ("Apple", "Facebook")
    path = write_prefs(pairs, tmp_path / "prefs")
    assert path.name == PREFS_FILE
    records = read_prefs(tmp_path / "prefs")
    assert len(records) == len(pairs)
    first = records[0]
    pair = pairs[0]
    # The trained prompt is exactly the reader's prompt.
    assert first["prompt"] == build_messages(pair.question, pair.evidence, instruction=pair.instruction)
    assert first["chosen"] == [{"role": "assistant", "content": pair.chosen}]


def test_read_prefs_rejects_incomplete_records(tmp_path: Path) -> None:
    _write(tmp_path / PREFS_FILE, [{"prompt": [], "chosen": []}])
    with pytest.raises(InputError, match="rejected"):
        read_prefs(tmp_path)


def test_build_prefs_cli(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-prefs", "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    assert "pairs" in capsys.readouterr().out
    assert (tmp_path / "out" / PREFS_FILE).is_file()
    assert main(["build-prefs", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2


def test_heldout_items_and_score(data: Path) -> None:
    items = heldout_items(data, squad_each=5, poisoned=5, n_poisoned=5)
    assert {i.id for i in items} == {"sq-1", "sq-3", "sq-5", "sq-7", "pr-1", "pr-3"}
    assert all(len(i.evidence) == 6 for i in items if i.family == "poisonedrag")
    ev = ()
    items = [
        EvalItem("squad2", "a", "q", ev, ("Paris",)), EvalItem("squad2", "b", "q", ev, ("Rome",)),
        EvalItem("squad2", "c", "q", ev, (), unanswerable=True), EvalItem("squad2", "d", "q", ev, (), unanswerable=True),
        EvalItem("poisonedrag", "e", "q", ev, ("23",), target="24"),
        EvalItem("poisonedrag", "f", "q", ev, ("23",), target="24"),
    ]
    outputs = [_Out("Paris", False), _Out("I don't know", True), _Out("I don't know", True), _Out("Lyon", False),
               _Out("24", False), _Out("23", False)]
    metrics = score(items, outputs)
    assert metrics["refusal_precision"] == 0.5 and metrics["refusal_recall"] == 0.5
    assert metrics["over_refusal"] == 0.5 and metrics["answerable_acc"] == 0.5
    assert metrics["asr"] == 0.5 and metrics["poison_acc"] == 0.5 and metrics["poison_refusal"] == 0.0


def test_knowledge_identification_pairs_reject_a_distractor_answer(tmp_path: Path) -> None:
    from rag.preferences import knowledge_identification_pairs

    kid = tmp_path / "x.kid.jsonl"
    rows = [
        {"id": "q1", "question": "Who directed Zardoz?", "answers": ["John Boorman"],
         "passages": [{"id": "a", "text": "Zardoz was directed by John Boorman."},
                      {"id": "b", "text": "Zardoz starred Sean Connery and Charlotte Rampling."}],
         "useful": [0], "misleading": [1]},
        # No distractor offers an answer of the asked kind: no pair.
        {"id": "q2", "question": "Who wrote it?", "answers": ["Ann"],
         "passages": [{"id": "c", "text": "Ann wrote it."}, {"id": "d", "text": "it was long."}],
         "useful": [0], "misleading": []},
    ]
    kid.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pairs = list(knowledge_identification_pairs([kid], limit=10))
    assert [p.id for p in pairs] == ["q1-kid"]
    pair = pairs[0]
    assert pair.kind == "knowledge-identification" and pair.chosen == "John Boorman"
    assert pair.rejected in ("Sean Connery", "Charlotte Rampling", "Sean Connery and Charlotte Rampling")
    assert [e.source_id for e in pair.evidence] == ["a", "b"]
    assert list(knowledge_identification_pairs([kid], limit=0)) == []


def test_train_config_names_a_bad_device_before_any_model_loads() -> None:
    assert TrainConfig(prefs="p", out="o").device == "auto"  # a CUDA GPU when torch sees one, else the CPU
    assert TrainConfig(prefs="p", out="o", device="cuda:1").device == "cuda:1"
    with pytest.raises(InputError, match="TrainConfig.device"):
        TrainConfig(prefs="p", out="o", device="tpu")
