"""The rerank + gate stage inside a real pipeline (real embedder, real FAISS, sample index): switches, the
gate's scores on the evidence, dropping everything, and clear errors when weights are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ModelLoadError
from rag.gate import GateTrainConfig, train_gate
from rag.pipeline import QAPipeline
from rag.prefs import ALIGNED, NEUTRAL, Candidate, PreferenceRecord

pytestmark = pytest.mark.integration


def synthetic_records(n: int = 16) -> list[PreferenceRecord]:
    records = []
    for k in range(n):
        cands = tuple(
            Candidate(f"p{k}-{r}", f"Entity{k} was born in Town{k}." if r in (0, 3) else f"Other text {r}.",
                      0.8 - 0.05 * r, r, 0.0, 0.0, r in (0, 3), ALIGNED if r in (0, 3) else NEUTRAL)
            for r in range(6)
        )
        records.append(PreferenceRecord(f"q{k}", f"Where was Entity{k} born?", (f"Town{k}",), "syn", 0.0, cands))
    return records


@pytest.fixture(scope="module")
def gate_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gate") / "gate.safetensors"
    train_gate(synthetic_records(), out, GateTrainConfig(epochs=100), progress=False)
    return out


def test_vanilla_has_no_alignment_stage(sample_index: Path) -> None:
    pipeline = QAPipeline.load(sample_index, preset="vanilla", device="cpu")
    assert pipeline.reranker is None and pipeline.gate is None


def test_gate_stage_scores_and_may_drop_all(sample_index: Path, gate_file: Path) -> None:
    pipeline = QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=True, gate_path=str(gate_file))
    assert pipeline.gate is not None and pipeline.reranker is None
    question = "When is the next Deadpool movie being released?"
    kept, pool = pipeline.select_passages(question)
    assert len(pool) >= len(kept) and len(kept) <= pipeline.config.top_k
    assert all(0.0 <= h.scores["gate"] <= 1.0 for h in pool[: pipeline.config.gate_pool])
    assert all(h.scores["gate"] > pipeline.gate.threshold_for("passage") for h in kept)
    weights = [h.scores["gate"] for h in kept]
    assert weights == sorted(weights, reverse=True)  # the gate's best first
    closed = QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=True, gate_path=str(gate_file),
                             gate_threshold=1.0)
    assert closed.select_passages(question)[0] == []


def test_auto_switch_and_missing_weights(sample_index: Path, gate_file: Path, tmp_path: Path) -> None:
    auto = QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=None, gate_path=str(gate_file))
    assert auto.gate is not None  # None = on when weights are found
    off = QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=None,
                          gate_path=str(tmp_path / "none.safetensors"))
    assert off.gate is None
    with pytest.raises(ModelLoadError, match="train-gate"):
        QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=True,
                        gate_path=str(tmp_path / "none.safetensors"))
    with pytest.raises(ModelLoadError, match="train-reranker"):
        QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_reranker=True,
                        reranker_path=str(tmp_path / "none"))


def test_gate_weighs_kg_triples(sample_index: Path, gate_file: Path) -> None:
    from rag.gate import GateContext

    pipeline = QAPipeline.load(sample_index, preset="default", device="cpu", use_gate=True, gate_path=str(gate_file),
                               use_reader=False)
    subgraph = pipeline.kg.retrieve("Alex Kendrick directed which films")
    assert len(subgraph.triples) > 3
    gated, weights = pipeline.gate_triples("Alex Kendrick directed which films", subgraph,
                                           GateContext.from_subgraph(subgraph))
    assert len(weights) == min(len(subgraph.triples), pipeline.config.gate_triple_pool)
    kept = [st.score for st in gated.triples]
    assert kept == sorted(kept, reverse=True) and all(w > pipeline.gate.threshold_for("triple") for w in kept)
    assert {st.triple for st in gated.triples} <= {st.triple for st in subgraph.triples}
    assert gated.candidates == subgraph.candidates  # the gate trims evidence, not the KG's answer
    closed = QAPipeline.load(sample_index, preset="default", device="cpu", use_gate=True, gate_path=str(gate_file),
                             gate_threshold=1.0, use_reader=False)
    assert closed.gate_triples("Alex Kendrick directed which films", subgraph)[0].triples == ()


def test_gate_aspects_switch_off_one_by_one(sample_index: Path, gate_file: Path) -> None:
    question = "When is the next Deadpool movie being released?"
    on = QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=True, gate_path=str(gate_file),
                         gate_threshold=1.0)
    assert on.select_passages(question)[0] == []  # the gate drops every passage
    passages_off = QAPipeline.load(sample_index, preset="vanilla", device="cpu", use_gate=True,
                                   gate_path=str(gate_file), gate_threshold=1.0, gate_on_passages=False)
    kept, _ = passages_off.select_passages(question)
    assert kept and all("gate" not in h.scores for h in kept)  # passages pass ungated
