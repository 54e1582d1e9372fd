"""DPA-RAG preference labels, reranker losses/training, the Amar-style gate and the alignment config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rag.config import make_config
from rag.errors import InputError, ModelLoadError
from rag.gate import (
    FEATURES,
    EvidenceGate,
    GateContext,
    GateItem,
    GateTrainConfig,
    alignment_features,
    auc,
    items_from_record,
    kept_best_first,
    question_entities,
    train_gate,
)
from rag.prefs import (
    ALIGNED,
    MISLEADING,
    NEUTRAL,
    Candidate,
    PreferenceRecord,
    agreed_labels,
    build_record,
    build_record_gold,
    knowledge_identification,
    label_for,
    read_records,
)
from rag.types import Passage, ScoredPassage


def hit(pid: str, text: str, score: float, title: str = "") -> ScoredPassage:
    return ScoredPassage(Passage(pid, text, title=title), score)


class LikelihoodReader:
    """Stands in for the reader: the gold answer is likely when the evidence contains it or 'helpful'."""

    def score_options(self, question, evidence, options):
        text = " ".join(e.text for e in evidence)
        if not evidence:
            return [-3.0 for _ in options]
        if any(o in text for o in options):
            return [-0.5 for _ in options]
        return [-5.0 if "wrong" in text else -3.1 for _ in options]


def test_label_for_margins() -> None:
    assert label_for(0.5, 0.2) == ALIGNED and label_for(-0.5, 0.2) == MISLEADING and label_for(0.1, 0.2) == NEUTRAL


def test_build_record_labels_by_reader_likelihood() -> None:
    hits = [hit("a", "Paris is the capital of France.", 0.9), hit("b", "a wrong claim", 0.8), hit("c", "unrelated", 0.7)]
    record = build_record(LikelihoodReader(), "q1", "Capital of France?", ["Paris"], hits)
    assert [c.label for c in record.candidates] == [ALIGNED, MISLEADING, NEUTRAL]
    assert record.candidates[0].contains and not record.candidates[1].contains
    assert record.loglik_none == -3.0 and record.labeler == "reader"
    example = knowledge_identification(record)
    assert example["useful"] == [0] and example["misleading"] == [1] and len(example["passages"]) == 3
    with pytest.raises(InputError):
        build_record(LikelihoodReader(), "q2", "?", ["  "], hits)


def test_agreed_labels_keep_reader_labels_the_distant_labels_support() -> None:
    hits = [hit("a", "Paris is the capital of France.", 0.9), hit("s", "France's capital city", 0.85),
            hit("b", "a wrong claim", 0.8), hit("h", "helpful but off topic", 0.7),
            hit("m", "a wrong claim about Paris", 0.6)]

    class Reader(LikelihoodReader):
        def score_options(self, question, evidence, options):
            if evidence and "helpful" in evidence[0].text:
                return [-0.5 for _ in options]  # the reader likes it, but nothing says it is on the answer's side
            if evidence and "claim about" in evidence[0].text:
                return [-5.0 for _ in options]  # it names the answer, yet the reader is hurt by it
            return super().score_options(question, evidence, options)

    record = build_record(Reader(), "q1", "Capital of France?", ["Paris"], hits, gold_ids=["s"])
    assert [c.label for c in record.candidates] == [ALIGNED, NEUTRAL, MISLEADING, ALIGNED, MISLEADING]
    assert [c.supporting for c in record.candidates] == [False, True, False, False, False]
    agreed = agreed_labels(record)
    # Kept: aligned with the answer in it; misleading without support. Dropped to neutral: the reader's liking
    # for an unsupported passage, and a "misleading" passage that contains the answer.
    assert [c.label for c in agreed.candidates] == [ALIGNED, NEUTRAL, MISLEADING, NEUTRAL, NEUTRAL]
    assert agreed.labeler == "reader+gold" and agreed.question == record.question
    gold = build_record_gold("q", "Where?", ["Oslo"], [hit("x", "Answer is Oslo.", 0.8)], [])
    assert agreed_labels(gold) is gold


def test_gold_labels_and_roundtrip(tmp_path: Path) -> None:
    hits = [hit("Bridge", "The bridge passage.", 0.9), hit("x", "Answer is Oslo.", 0.8), hit("y", "noise", 0.7)]
    record = build_record_gold("q", "Where?", ["Oslo"], hits, ["Bridge"])
    assert [c.label for c in record.candidates] == [ALIGNED, ALIGNED, NEUTRAL] and record.labeler == "gold"
    path = tmp_path / "p.jsonl"
    path.write_text(record.to_json() + "\n\n", encoding="utf-8")
    assert list(read_records(path)) == [record]
    path.write_text("{not json}\n", encoding="utf-8")
    with pytest.raises(InputError, match="p.jsonl:1"):
        list(read_records(path))
    assert knowledge_identification(build_record_gold("q", "?", ["none"], hits[2:], [])) is None


def test_question_entities_skip_sentence_initial_word() -> None:
    assert question_entities("Who directed The Dark Knight and Memento?") == ("The Dark Knight", "Memento")


def test_alignment_features_relate_aspects() -> None:
    items = [
        GateItem("passage", "Memento: Memento is a film by Christopher Nolan.", 0.8, 2.0),
        GateItem("passage", "Christopher Nolan: born in London.", 0.6, -1.0),
        GateItem("passage", "Cats: cats purr.", 0.3, -4.0),
    ]
    context = GateContext(entities=("Memento",), triple_entities=("Christopher Nolan", "London"), path_answers=("London",))
    rows = alignment_features("Where was the director of Memento born?", items, context)
    f = {name: [row[i] for row in rows] for i, name in enumerate(FEATURES)}
    assert len(rows) == 3 and all(len(r) == len(FEATURES) for r in rows)
    assert f["entity_coverage"] == [1.0, 0.0, 0.0]
    assert f["bridge"] == [1.0, 1.0, 0.0]  # passage 1 names passage 2's title
    assert f["triple_support"] == [0.5, 1.0, 0.0] and f["answer_path"] == [0.0, 1.0, 0.0]
    assert f["title_in_question"] == [1.0, 0.0, 0.0] and f["has_rerank"] == [1.0] * 3
    assert f["dense_gap"][0] == 0.0 and f["rerank_rank"] == [0.0, 1 / 3, 2 / 3]
    no_rerank = alignment_features("q?", [GateItem("passage", "x", 0.5)])
    assert no_rerank[0][FEATURES.index("rerank_prob")] == 0.5 and alignment_features("q?", []) == []


def test_auc() -> None:
    assert auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0 and auc([0.1, 0.9], [1, 0]) == 0.0
    assert auc([0.5, 0.5], [1, 0]) == 0.5 and math.isnan(auc([0.5], [1]))


def synthetic_records(n: int = 24) -> list[PreferenceRecord]:
    """Aligned passages mention the question's entity; distractors do not (a signal the gate can learn)."""
    records = []
    for k in range(n):
        entity = f"Entity{k} Name"
        cands = []
        for rank in range(6):
            good = rank in (0, 3)
            text = f"{entity} was born in Town{k}." if good else f"Other{rank} text about something else {k}."
            cands.append(Candidate(f"p{k}-{rank}", text, 0.8 - 0.05 * rank, rank, 0.0, 0.0, good,
                                   ALIGNED if good else NEUTRAL))
        records.append(PreferenceRecord(f"q{k}", f"Where was {entity} born?", (f"Town{k}",), "syn", 0.0, tuple(cands)))
    return records


def test_train_gate_learns_and_loads(tmp_path: Path) -> None:
    records = synthetic_records()
    out = tmp_path / "gate.safetensors"
    summary = train_gate(records, out, GateTrainConfig(epochs=150), progress=False)
    assert summary["train_auc"] > 0.95 and out.stat().st_size < 20_000
    gate = EvidenceGate(out)
    items = items_from_record(records[0])
    weights = gate.weights(records[0].question, items)
    assert all(0.0 <= w <= 1.0 for w in weights) and weights[0] > weights[1]
    assert gate.threshold == summary["threshold"]
    assert gate.threshold_for("passage") == summary["aspect_thresholds"]["passage"]
    assert gate.threshold_for("entity") == gate.threshold  # an aspect it was not trained on: the overall one
    closed = EvidenceGate(out, threshold=1.0)
    assert kept_best_first(closed.weights(records[0].question, items), closed.threshold_for("passage")) == []  # it may drop everything
    with pytest.raises(ModelLoadError, match="train-gate"):
        EvidenceGate(tmp_path / "missing.safetensors").warm_up()
    with pytest.raises(InputError):
        train_gate([PreferenceRecord("q", "q?", ("a",), "", 0.0, ())], tmp_path / "x.safetensors", progress=False)


def test_alignment_config_switches() -> None:
    assert make_config("vanilla").use_reranker is False and make_config("vanilla").use_gate is False
    assert make_config("default").use_reranker is None  # on when trained weights are found
    assert make_config("vanilla", use_gate=True).use_gate is True
    with pytest.raises(InputError, match="gate_threshold"):
        make_config(gate_threshold=1.5)
    with pytest.raises(InputError, match="rerank_pool"):
        make_config(rerank_pool=0)


def test_cli_set_parses_config_values() -> None:
    from rag.__main__ import parse_setting

    assert parse_setting("use_gate=false") == ("use_gate", False)
    assert parse_setting("gate_threshold=0.6") == ("gate_threshold", 0.6)
    assert parse_setting("top_k=3") == ("top_k", 3) and parse_setting("gate_path=none") == ("gate_path", None)
    assert parse_setting("reranker_path=/tmp/x") == ("reranker_path", "/tmp/x")
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_setting("use_gate")


# ---- the triple aspect (KG subgraph triples as gate candidates) ----------------------------------------------


def two_hop_subgraph():
    from kg.types import LinkedEntity, ScoredTriple, Subgraph, Triple

    triples = [
        Triple("Film A", "directed_by", "Jane Roe"),  # bridge: topic -> film
        Triple("Film A", "release_year", "1990"),  # answer triple
        Triple("Film B", "directed_by", "Jane Roe"),  # a bridge to a film whose year is not here
        Triple("Film A", "has_genre", "Drama"),  # noise on the bridge entity
        Triple("Film C", "release_year", "1990"),  # names the answer, but is not reached from the topic
        Triple("Film C", "directed_by", "John Doe"),
    ]
    return Subgraph(entities=(LinkedEntity("Jane Roe", "Jane Roe", 1.0, "exact"),),
                    triples=tuple(ScoredTriple(t, 0.9 - 0.1 * k) for k, t in enumerate(triples)),
                    candidates=("1990",))


def test_gold_path_triples_follow_shortest_paths_from_the_linked_entity() -> None:
    from rag.prefs import gold_path_triples

    subgraph = two_hop_subgraph()
    assert gold_path_triples(subgraph, ["1990"]) == {0, 1}
    # No linked entity reaches the answer: the triples naming it are all that is known.
    assert gold_path_triples(subgraph, ["John Doe"]) == {5}
    assert gold_path_triples(subgraph, ["Nowhere"]) == set()


def test_triple_candidates_and_record_context_roundtrip(tmp_path: Path) -> None:
    from rag.prefs import build_record_gold, read_records

    record = build_record_gold("q", "when were the films directed by Jane Roe released", ["1990"],
                               [hit("p1", "Jane Roe is a director.", 0.7, "Jane Roe")], [], subgraph=two_hop_subgraph())
    triples = [c for c in record.candidates if c.aspect == "triple"]
    assert [c.label for c in triples] == [ALIGNED, ALIGNED, NEUTRAL, NEUTRAL, NEUTRAL, NEUTRAL]
    assert triples[0].title == "Film A" and [c.aspect for c in record.passages] == ["passage"]
    assert record.context["entities"] == ["Jane Roe"] and record.context["path_answers"] == ["1990"]
    path = tmp_path / "prefs.jsonl"
    path.write_text(record.to_json() + "\n", encoding="utf-8")
    assert list(read_records(path)) == [record]
    # Knowledge identification is about passages only.
    assert knowledge_identification(record) is None


def test_scores_are_ranked_within_their_aspect() -> None:
    items = [GateItem("passage", "Jane Roe directed Film A.", 0.8), GateItem("passage", "Other.", 0.4),
             GateItem("triple", "Film A release year 1990", 0.3, title="Film A"),
             GateItem("triple", "Film B has genre Drama", 0.1, title="Film B")]
    rows = alignment_features("when were the films directed by Jane Roe released", items)
    dense_gap, dense_rank, is_triple = FEATURES.index("dense_gap"), FEATURES.index("dense_rank"), FEATURES.index("is_triple")
    # The best triple is first among triples, though its score is below every passage's.
    assert rows[2][dense_rank] == 0.0 and rows[2][dense_gap] == 0.0 and rows[0][dense_rank] == 0.0
    assert rows[3][dense_rank] == 0.5 and rows[3][dense_gap] == pytest.approx(-0.2)
    assert [r[is_triple] for r in rows] == [0.0, 0.0, 1.0, 1.0]


def test_gate_learns_a_threshold_per_aspect(tmp_path: Path) -> None:
    records = []
    for record in synthetic_records():
        triples = tuple(Candidate(f"{record.qid}-t{r}", f"Film{r} release year 19{r}0", 0.5 - 0.1 * r, r, 0.0, 0.0,
                                  r == 0, ALIGNED if r == 0 else NEUTRAL, aspect="triple", title=f"Film{r}")
                        for r in range(4))
        records.append(PreferenceRecord(record.qid, record.question, record.answers, "syn", 0.0,
                                        record.candidates + triples))
    out = tmp_path / "gate.safetensors"
    summary = train_gate(records, out, GateTrainConfig(epochs=150), progress=False)
    assert set(summary["aspect_thresholds"]) == {"passage", "triple"}
    gate = EvidenceGate(out)
    assert gate.threshold_for("triple") == summary["aspect_thresholds"]["triple"]
    assert EvidenceGate(out, threshold=0.33).threshold_for("triple") == 0.33  # an override applies to every aspect


def test_kept_best_first_orders_by_weight_and_may_keep_nothing() -> None:
    assert kept_best_first([0.2, 0.9, 0.6, 0.9], 0.5) == [1, 3, 2]
    assert kept_best_first([0.2, 0.4], 0.5) == []
