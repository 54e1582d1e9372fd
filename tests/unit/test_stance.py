"""Yes/no stance: training examples from ConflictQA records, the side-weighing rule, and a real (tiny, random)
stance cross-encoder trained, saved and reloaded with the packaged tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import make_config
from rag.errors import InputError, ModelLoadError
from rag.pipeline import load_stance
from rag.reader import ReaderOutput
from rag.stance import (
    LABELS,
    StanceExample,
    StanceModel,
    StanceTrainConfig,
    conflictqa_examples,
    follow,
    in_pool_group,
    independent_count,
    negated_sentences,
    neither_examples,
    polar_verdict,
    side_of,
    train_stance,
    with_distractors,
)
from rag.types import Evidence


def _record(qid: str, memory: str, counter: str, **ids: str) -> dict:
    return {"id": qid, "question": f"Is it so for {qid}?", "per_model": {"m": {"memory_answer": memory,
                                                                             "counter_answer": counter, **ids}}}


def test_conflictqa_examples_label_each_passage_by_its_claim() -> None:
    passages = {k: {"id": k, "text": f"text {k}"} for k in ("pm", "cm", "pe", "ce", "shared")}
    record = _record("q1", "It is red.", "It is not red.", parametric_memory_id="pm", counter_memory_id="cm",
                     parametric_aligned_evidence_id="pe", counter_aligned_evidence_id="missing")
    examples = conflictqa_examples([record], passages)
    assert {(e.text, e.label) for e in examples} == {("text pm", "yes"), ("text pe", "yes"), ("text cm", "no")}
    assert all(e.question_id == "q1" for e in examples)
    assert len(conflictqa_examples([record], passages, per_label=1)) == 2  # one per side
    # Negation that does not tell the claims apart: no label, no example.
    assert conflictqa_examples([_record("q2", "It is possible.", "It is impossible.", parametric_memory_id="pm")],
                               passages) == []
    # One passage given both sides by two source models of one question is dropped.
    record = {"id": "q3", "question": "Q?", "per_model": {
        "a": {"memory_answer": "X is.", "counter_answer": "X is not.", "parametric_memory_id": "shared"},
        "b": {"memory_answer": "X is not.", "counter_answer": "X is.", "parametric_memory_id": "shared"}}}
    assert conflictqa_examples([record], passages) == []


def test_neither_examples_take_the_nearest_passage_of_another_question() -> None:
    questions = [("q1", "first?"), ("q2", "second?")]
    q_vectors = np.eye(3, dtype=np.float32)[:2]
    texts = [("q1", "own passage"), ("q2", "near q1 but of q2"), ("q2", "far")]
    t_vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1]], dtype=np.float32)
    examples = neither_examples(questions, q_vectors, texts, t_vectors)
    assert [(e.question_id, e.text, e.label) for e in examples] == [
        ("q1", "near q1 but of q2", "neither"), ("q2", "own passage", "neither")]
    with pytest.raises(InputError):
        neither_examples(questions, q_vectors[:1], texts, t_vectors)


def test_distractors_add_another_questions_negation_and_keep_the_label() -> None:
    sentences = negated_sentences([("q1", "It is red. It is not blue, nor green. No."), ("q2", "Rome was not built in a day.")])
    assert sentences == [("q1", "It is not blue, nor green."), ("q2", "Rome was not built in a day.")]
    examples = [StanceExample("q1", "Is it red?", "It is red.", "yes")] * 40
    out = with_distractors(examples, sentences, share=1.0)
    changed = [e for e in out if e.text != "It is red."]
    assert changed and all("Rome was not built in a day." in e.text for e in changed)  # never its own question's
    assert {e.label for e in out} == {"yes"} and len(out) == 40
    assert with_distractors(examples, sentences, share=0.0) == examples


def _passages(n: int) -> list[Evidence]:
    return [Evidence("passage", f"p{k}", f"passage {k}", 0.5, label=f"P{k + 1}") for k in range(n)]


def _stance(yes: float, no: float) -> dict[str, float]:
    return {"yes": yes, "no": no, "neither": round(1 - yes - no, 4)}


def test_polar_verdict_weighs_independent_sides() -> None:
    distinct = np.eye(4, dtype=np.float32)
    # Nobody takes a side: keep the reader's answer, nothing reported.
    verdict = polar_verdict("Yes", _passages(2), [_stance(0.3, 0.3)] * 2, distinct[:2], threshold=0.7, similarity=0.7)
    assert verdict.answer == "" and verdict.conflicts == ()
    # All sided passages say no, the reader said yes: follow the passages, no conflict.
    verdict = polar_verdict("Yes.", _passages(2), [_stance(0.1, 0.9), _stance(0.2, 0.2)], distinct[:2],
                            threshold=0.7, similarity=0.7)
    assert verdict.answer == "no" and verdict.conflicts == () and [e.source_id for e in verdict.evidence] == ["p0"]
    # ...unless another passage still leans the reader's way, below the bar: the reader is not overruled.
    verdict = polar_verdict("Yes", _passages(2), [_stance(0.1, 0.9), _stance(0.6, 0.3)], distinct[:2],
                            threshold=0.7, similarity=0.7)
    assert verdict.answer == "" and verdict.conflicts == () and "leans" in verdict.reason
    # One against one: a conflict, and the reader's reading of both is kept.
    one_one = [_stance(0.9, 0.05), _stance(0.05, 0.9)]
    verdict = polar_verdict("No", _passages(2), one_one, distinct[:2], threshold=0.7, similarity=0.7)
    assert verdict.answer == "no" and len(verdict.conflicts) == 1
    conflict = verdict.conflicts[0]
    assert (conflict.claim_a, conflict.source_a, conflict.claim_b, conflict.source_b) == ("No", "p1", "Yes", "p0")
    assert verdict.tied
    # Two independent "no" against one "yes": the majority wins over the reader's "yes".
    two_one = [_stance(0.9, 0.05), _stance(0.05, 0.9), _stance(0.1, 0.8)]
    verdict = polar_verdict("Yes", _passages(3), two_one, distinct[:3], threshold=0.7, similarity=0.7)
    assert verdict.answer == "no" and "majority" in verdict.reason and verdict.conflicts[0].claim_a == "No"
    assert not verdict.tied
    # ...but three near-duplicate "yes" passages are one voice against one "no": a tie, the reader decides.
    planted = [_stance(0.95, 0.0)] * 3 + [_stance(0.0, 0.9)]
    clustered = np.array([[1, 0], [0.99, 0.141], [0.98, 0.199], [0, 1]], dtype=np.float32)
    verdict = polar_verdict("No", _passages(4), planted, clustered, threshold=0.7, similarity=0.7)
    assert verdict.answer == "no" and "each side" in verdict.reason and verdict.tied
    # Alone, those near-duplicates do not overrule the reader either (a planted group is one unverified source).
    verdict = polar_verdict("No", _passages(3), planted[:3], clustered[:3], threshold=0.7, similarity=0.7)
    assert verdict.answer == "" and "near-duplicate" in verdict.reason
    verdict = polar_verdict("No", _passages(3), planted[:3], distinct[:3], threshold=0.7, similarity=0.7)
    assert verdict.answer == "yes"  # three independent passages do
    # A coordinated group on one side counts as one voice even where pairs fall just below the bar (0.66 < 0.7).
    loose = np.array([[1, 0, 0], [0.92, 0.39, 0], [0.66, 0.2, 0.72], [0, 0, 1]], dtype=np.float32)
    loose[:3] /= np.linalg.norm(loose[:3], axis=1, keepdims=True)
    loose[3] = [0, -1, 0]
    verdict = polar_verdict("Yes", _passages(4), [_stance(0.0, 0.9)] * 3 + [_stance(0.9, 0.0)], loose,
                            threshold=0.7, similarity=0.7)
    assert verdict.answer == "yes" and "each side" in verdict.reason
    with pytest.raises(InputError):
        polar_verdict("Yes", _passages(2), one_one, distinct[:1], threshold=0.7, similarity=0.7)


def test_a_shown_passage_of_a_planted_group_in_the_pool_is_one_unverified_voice() -> None:
    # A passage chain shows one passage of five planted near-duplicates: the group is found in the wider pool.
    planted = np.array([[1, 0, 0], [0.99, 0.141, 0], [0.98, 0.199, 0], [0.97, 0, 0.243], [0.99, 0, 0.141]],
                       dtype=np.float32)
    planted /= np.linalg.norm(planted, axis=1, keepdims=True)
    real = np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32)
    pool = np.vstack([planted, real])
    assert in_pool_group(planted[:1], pool, 0.7, 3) == [True]
    assert in_pool_group(real, pool, 0.7, 3) == [False, False]
    assert in_pool_group(planted[:1], planted[:2], 0.7, 3) == [False]  # two alike are not a group of three
    assert in_pool_group(planted[:0], pool, 0.7, 3) == []
    # The one shown planted passage says no, the reader said yes: followed without the pool, not with it.
    one = polar_verdict("Yes", _passages(1), [_stance(0.05, 0.9)], planted[:1], threshold=0.7, similarity=0.7)
    assert one.answer == "no"
    grouped = polar_verdict("Yes", _passages(1), [_stance(0.05, 0.9)], planted[:1], threshold=0.7, similarity=0.7,
                            grouped=[True])
    assert grouped.answer == "" and "near-duplicate" in grouped.reason
    # A side with an independent passage beside the grouped one is not one group: it is followed.
    mixed = polar_verdict("Yes", _passages(2), [_stance(0.05, 0.9)] * 2, np.vstack([planted[:1], real[:1]]),
                          threshold=0.7, similarity=0.7, grouped=[True, False])
    assert mixed.answer == "no"
    with pytest.raises(InputError, match="grouped"):
        polar_verdict("Yes", _passages(1), [_stance(0.05, 0.9)], planted[:1], threshold=0.7, similarity=0.7,
                      grouped=[True, False])


def test_side_of_and_follow() -> None:
    assert side_of("Yes, it was.") == "yes" and side_of("no") == "no" and side_of("Nobody") == ""
    output = ReaderOutput("Yes", "Yes [P1]", ("P1",), (-0.1,), False)
    followed = follow(output, "no", 0.8)
    assert followed.text == "No" and followed.cited_labels == () and abs(followed.min_logprob - np.log(0.8)) < 1e-6
    assert independent_count(np.eye(3, dtype=np.float32), 0.7) == 3
    assert independent_count(np.ones((3, 2), dtype=np.float32) / np.sqrt(2), 0.7) == 1


def test_stance_config_and_lookup(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="stance_threshold"):
        make_config(stance_threshold=1.5)
    with pytest.raises(InputError, match="max_length"):
        StanceTrainConfig(max_length=4)
    assert make_config("vanilla").use_stance is False
    assert load_stance(tmp_path, make_config(stance_path=str(tmp_path / "none"))) is None
    with pytest.raises(ModelLoadError, match="train-stance"):
        load_stance(tmp_path, make_config(use_stance=True, stance_path=str(tmp_path / "none")))
    with pytest.raises(ModelLoadError, match="train-stance"):
        StanceModel(tmp_path / "none").warm_up()


def test_tiny_stance_model_trains_saves_and_reloads(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import BertConfig

    from rag.rerank import build_model

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    model, tokenizer = build_model(encoder_config=config, outputs=len(LABELS))
    examples = [StanceExample(f"q{k}", "is the sky green?", text, label) for k in range(6)
                for text, label in (("the sky is green", "yes"), ("the sky is never green", "no"),
                                    ("bananas grow in bunches", "neither"))]
    summary = train_stance(examples, examples[:3], tmp_path / "stance",
                           StanceTrainConfig(epochs=4, lr=2e-3, max_length=32, batch_size=6),
                           model=model, tokenizer=tokenizer, progress=False)
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]
    assert summary["train_examples"] == {"yes": 6, "no": 6, "neither": 6}
    found = load_stance(tmp_path, make_config(stance_path=str(tmp_path / "stance")))
    assert isinstance(found, StanceModel)
    probs = found.stances("is the sky green?", ["the sky is green", "the sky is never green"])
    assert [max(LABELS, key=p.__getitem__) for p in probs] == ["yes", "no"]
    assert all(abs(sum(p.values()) - 1.0) < 1e-3 for p in probs)
    assert found.stances("q", []) == []
    with pytest.raises(InputError, match="label"):
        train_stance([StanceExample("q", "q", "t", "maybe")] * 2, [], tmp_path / "x", model=model,
                     tokenizer=tokenizer, progress=False)


def test_lora_deltas_merge_into_the_plain_model_exactly() -> None:
    torch = pytest.importorskip("torch")
    from transformers import BertConfig

    from rag.rerank import build_model
    from rag.stance import add_lora, lora_state, merge_lora

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    wrapped, tokenizer = build_model(encoder_config=config, outputs=len(LABELS))
    plain, _ = build_model(encoder_config=config, outputs=len(LABELS))
    plain.load_state_dict(wrapped.state_dict())
    scale = add_lora(wrapped, rank=4, alpha=8.0)
    assert scale == 2.0
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) or n.startswith("head.") for n in trainable)
    with torch.no_grad():
        for name, parameter in wrapped.named_parameters():
            if name.endswith(".lora_B"):
                parameter.normal_()  # B starts at zero: give the delta something to carry
    state = lora_state(wrapped)
    assert len([k for k in state if k.endswith(".lora_A")]) == 2 * 6  # q, k, v, 3 dense layers per block
    merge_lora(plain, state, scale)
    plain.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
    encoded = tokenizer(["is it green?"], ["it is green"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(wrapped.eval()(**encoded), plain.eval()(**encoded), atol=1e-4)
    with pytest.raises(ModelLoadError, match="matches no weight"):
        merge_lora(plain, {"encoder.nothing.lora_A": torch.zeros(1), "encoder.nothing.lora_B": torch.zeros(1)}, 1.0)
    with pytest.raises(InputError, match="lora_rank"):
        StanceTrainConfig(lora_rank=-1)


@pytest.mark.parametrize("broken", ["weights", "meta"])
def test_an_unreadable_trained_model_is_one_clear_error_naming_the_file(tmp_path: Path, broken: str) -> None:
    """A corrupt stance model, reranker or gate file is a ModelLoadError naming it, not a library traceback."""
    import json

    from rag import rerank, stance
    from rag.gate import EvidenceGate

    for folder, meta_name, load in ((tmp_path / "stance", stance.META, stance._load),
                                    (tmp_path / "reranker", rerank.META, rerank.load_trained)):
        folder.mkdir()
        (folder / stance.WEIGHTS).write_bytes(b"not a safetensors file" if broken == "weights" else b"")
        (folder / meta_name).write_text("{broken" if broken == "meta" else json.dumps({"labels": list(stance.LABELS)}))
        bad = stance.WEIGHTS if broken == "weights" else meta_name
        with pytest.raises(ModelLoadError, match=f"{bad} (is|are) not (a )?readable"):
            load(folder)
    gate = tmp_path / "gate.safetensors"
    gate.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="gate.safetensors are not a readable safetensors file"):
        EvidenceGate(gate).warm_up()
