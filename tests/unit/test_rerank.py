"""Reranker losses and a real (tiny, random) cross-encoder training loop with the packaged tokenizer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rag.errors import InputError, ModelLoadError
from rag.prefs import ALIGNED, MISLEADING, NEUTRAL, Candidate, PreferenceRecord
from rag.rerank import CrossEncoderReranker, RerankerTrainConfig, _training_groups, joint_loss, train_reranker

torch = pytest.importorskip("torch")


def test_joint_loss_prefers_aligned_on_top() -> None:
    labels = torch.tensor([1.0, 0.0, 0.0])
    good, _ = joint_loss(torch.tensor([3.0, -2.0, -1.0]), labels)
    bad, parts = joint_loss(torch.tensor([-3.0, 2.0, 1.0]), labels)
    assert float(good) < float(bad) and parts["pair"] > 0 and parts["list"] > 0
    only_neg, parts = joint_loss(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert parts["pair"] == 0.0 and parts["list"] == 0.0 and float(only_neg) > 0


def record(k: int) -> PreferenceRecord:
    cands = (
        Candidate("a", f"Alpha{k} answer passage", 0.5, 2, 0.0, 1.0, True, ALIGNED),
        Candidate("b", "beta distractor text", 0.9, 0, 0.0, -1.0, False, MISLEADING),
        Candidate("c", "gamma distractor text", 0.8, 1, 0.0, 0.0, False, NEUTRAL),
        Candidate("d", "delta distractor text", 0.7, 3, 0.0, 0.0, False, NEUTRAL),
    )
    return PreferenceRecord(f"q{k}", f"question about alpha{k}?", ("x",), "t", 0.0, cands)


def test_training_groups_keep_misleading_negatives_first() -> None:
    groups = _training_groups([record(0)], negatives=2)
    assert groups[0][1] == ["Alpha0 answer passage", "beta distractor text", "gamma distractor text"]
    assert groups[0][2] == [1.0, 0.0, 0.0]
    no_pos = PreferenceRecord("q", "q?", ("x",), "", 0.0, (Candidate("c", "t", 0.1, 0, 0, 0, False, NEUTRAL),))
    assert _training_groups([no_pos], 2) == []


def test_tiny_cross_encoder_trains_saves_and_reloads(tmp_path: Path) -> None:
    from transformers import BertConfig

    from rag.rerank import build_model

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    model, tokenizer = build_model(encoder_config=config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    records = [record(k) for k in range(8)]
    summary = train_reranker(records, tmp_path / "rr", RerankerTrainConfig(epochs=3, lr=1e-3, max_length=32),
                             model=model, tokenizer=tokenizer, progress=False)
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    reranker = CrossEncoderReranker(tmp_path / "rr")
    scores = reranker.score("question about alpha1?", ["Alpha1 answer passage", "beta distractor text"])
    assert len(scores) == 2 and scores[0] > scores[1]
    with torch.no_grad():
        encoded = tokenizer(["question about alpha1?"], ["Alpha1 answer passage"], truncation="only_second",
                            max_length=32, return_tensors="pt")
        assert abs(float(model.eval()(**encoded)[0]) - scores[0]) < 1e-4  # reload gives the same model
    assert reranker.score("q", []) == []
    with pytest.raises(ModelLoadError, match="train-reranker"):
        CrossEncoderReranker(tmp_path / "nothing").warm_up()
    with pytest.raises(InputError):
        train_reranker([], tmp_path / "x", model=model, tokenizer=tokenizer, progress=False)
    with pytest.raises(InputError):
        RerankerTrainConfig(max_length=4)


def test_fusion_is_dense_order_at_zero_and_follows_a_reranker_that_helps() -> None:
    from rag.rerank import choose_fusion, fused_scores

    dense, rerank = [0.9, 0.8, 0.7], [-1.0, 0.0, 5.0]
    assert fused_scores(dense, rerank, 0.0)[0] == max(fused_scores(dense, rerank, 0.0))
    assert fused_scores(dense, rerank, 1.0)[2] == max(fused_scores(dense, rerank, 1.0))
    assert fused_scores([0.5, 0.5], [1.0, 1.0], 0.5) == [0.0, 0.0]  # flat pools do not divide by zero
    with pytest.raises(InputError):
        fused_scores([0.1], [0.1, 0.2], 0.5)
    # The dense order puts the relevant passage last; a reranker that knows better earns a large alpha.
    helps = [([0.9, 0.8, 0.7, 0.6], [0.0, -1.0, -2.0, 4.0], [0.0, 0.0, 0.0, 1.0])] * 3
    chosen = choose_fusion(helps)
    assert chosen["alpha"] >= 0.5 and chosen["ndcg5_fused"] > chosen["ndcg5_dense"]
    # A reranker that gets it backwards is fused out: alpha 0 and the dense figure.
    hurts = [([0.9, 0.8, 0.7, 0.6], [-3.0, 1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 0.0])] * 3
    chosen = choose_fusion(hurts)
    assert chosen["alpha"] == 0.0 and chosen["ndcg5_fused"] == chosen["ndcg5_dense"] == 1.0
    assert chosen["ndcg5_reranker"] < 1.0


def test_training_holds_out_questions_to_choose_the_fusion_weight(tmp_path: Path) -> None:
    from transformers import BertConfig

    from rag.rerank import build_model

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    model, tokenizer = build_model(encoder_config=config)
    summary = train_reranker([record(k) for k in range(20)], tmp_path / "rr",
                             RerankerTrainConfig(epochs=1, lr=1e-3, max_length=32, validation=0.2),
                             model=model, tokenizer=tokenizer, progress=False)
    assert summary["questions"] == 16 and summary["validation_questions"] == 4
    held = summary["history"][-1]["validation"]
    assert held["questions"] == 4 and 0.0 <= held["alpha"] <= 1.0 and held["alpha"] == summary["fusion_alpha"]
    # By dense score the aligned passage comes last of four: NDCG@5 = 1/log2(5).
    assert held["ndcg5_dense"] == round(1 / math.log2(5), 4) and held["ndcg5_fused"] >= held["ndcg5_dense"]
    reranker = CrossEncoderReranker(tmp_path / "rr")
    reranker.warm_up()
    assert reranker.fusion_alpha == summary["fusion_alpha"]
    with pytest.raises(InputError):
        RerankerTrainConfig(validation=1.0)
    with pytest.raises(InputError):
        RerankerTrainConfig(labels="mine")
