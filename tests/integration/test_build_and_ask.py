"""The sample index built with the real embedder, answered with the real packaged reader (Qwen by default)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexes import layout
from indexes.store import load_index
from rag.metrics import contains_answer
from rag.types import Answer

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
CONTRACT_KEYS = {"question", "text", "refused", "confidence", "citations", "conflicts"}


def one_per_qtype(questions: list[dict]) -> list[dict]:
    chosen: dict[str, dict] = {}
    for q in questions:
        if q["id"].startswith("metaqa-") and q["answers"]:
            chosen.setdefault(q["qtype"], q)
    return list(chosen.values())


def test_manifest(sample_build, sample_index: Path) -> None:
    manifest = sample_build.manifest
    version = sample_index / layout.current_version_name(sample_index)
    assert json.loads((version / layout.MANIFEST).read_text(encoding="utf-8")) == manifest
    assert manifest["format"] == layout.FORMAT_NAME and manifest["format_version"] == layout.FORMAT_VERSION
    assert manifest["embedder"] == {"name": "all-minilm-l6-v2", "dimension": 384}
    n_passages = sum(1 for line in (SAMPLE / "passages.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    n_triples = sum(1 for line in (SAMPLE / "triples.tsv").read_text(encoding="utf-8").splitlines() if line.strip())
    counts = manifest["counts"]
    assert counts["documents"] == n_passages and counts["triples"] == n_triples
    assert counts["kg_passages"] > 0 and counts["chunks"] >= counts["documents"] + counts["kg_passages"]
    assert counts["relations"] == 9 and counts["entities"] > 100
    assert manifest["vector_index"] == {"type": "flat", "count": counts["chunks"]}
    assert {"passages.jsonl", "vectors.faiss", "kg/triples.npy", "kg/entities.json", "kg/relations.json"} <= set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert layout.sha256_file(version / name) == digest, name
    assert not (sample_index / layout.STAGING).exists()


def test_load_index(sample_build, sample_index: Path) -> None:
    loaded = load_index(sample_index)
    counts = sample_build.manifest["counts"]
    assert len(loaded.passages) == len(loaded.vectors) == counts["chunks"]
    assert loaded.vectors.dimension == loaded.dimension == 384
    assert len(loaded.graph) == counts["triples"]
    assert {p.source for p in loaded.passages} >= {"nq-open", "hotpotqa", "kg"}


def test_default_pipeline_answers_metaqa_questions(default_pipeline, sample_questions) -> None:
    questions = one_per_qtype(sample_questions)
    assert len(questions) >= 8
    graph_ids = {t.id for t in map(default_pipeline.index.graph.triple, range(len(default_pipeline.index.graph)))}
    misses = []
    for q in questions:
        answer = default_pipeline.ask(q["question"])
        if answer.refused or not contains_answer(answer.text, q["answers"]):
            misses.append((q["question"], answer.text, q["answers"]))
            continue
        assert answer.citations, q["question"]
        for citation in answer.citations:
            if citation.kind == "triple":
                assert citation.id in graph_ids, citation
        assert any(c.kind == "triple" for c in answer.citations), (q["question"], answer.citations)
    assert len(misses) <= 0.2 * len(questions), misses


def test_kg_answer_is_fast_and_cites_the_path(default_pipeline) -> None:
    answer = default_pipeline.ask("who stars in Hot to Trot")
    assert not answer.refused
    assert contains_answer(answer.text, ["John Candy"])
    triple_ids = {c.id for c in answer.citations if c.kind == "triple"}
    assert "Hot to Trot|starred_actors|John Candy" in triple_ids
    assert 0.0 < answer.confidence <= 1.0 and "total" in answer.timings


def test_text_question_is_answered_from_a_passage(default_pipeline) -> None:
    answer = default_pipeline.ask("what year did seven nation army come out")
    assert not answer.refused and contains_answer(answer.text, ["2003"]), answer
    assert answer.method == "reader"
    passage_ids = [c.id for c in answer.citations if c.kind == "passage"]
    assert "nq-0114" in passage_ids, answer.citations


def test_unanswerable_questions_are_mostly_refused(default_pipeline) -> None:
    questions = ["Who conceptualized the piston?", "Where did Oursel lead the Franks?", "In what year did le roi Huguet die?"]
    answers = [default_pipeline.ask(q) for q in questions]
    refused = [a for a in answers if a.refused]
    assert len(refused) >= 2, [(a.question, a.text) for a in answers]
    for answer in refused:
        assert answer.text == "" or not answer.text.strip()
        # Refused by the gate (below its threshold), by the reader itself, or by the poison defense.
        assert 0.0 <= answer.confidence <= 1.0
        assert answer.method in ("reader", "refusal", "defense")


def test_vanilla_preset_runs_and_answers(vanilla_pipeline) -> None:
    assert vanilla_pipeline.kg is None and not vanilla_pipeline.config.refusal
    answer = vanilla_pipeline.ask("what year did seven nation army come out")
    assert isinstance(answer, Answer) and answer.question == "what year did seven nation army come out"
    # Straight to the reader: no KG stage, no refusal gate (the baseline is measured, not required to be right).
    assert answer.method == "reader" and answer.timings.get("kg", 0.0) == 0.0 and "reader" in answer.timings
    assert answer.refused or answer.text.strip()


def test_to_dict_is_json_and_matches_the_contract(default_pipeline) -> None:
    answer = default_pipeline.ask("what language is Kontroll in")
    data = json.loads(json.dumps(answer.to_dict()))
    assert CONTRACT_KEYS <= set(data)
    assert isinstance(data["text"], str) and isinstance(data["refused"], bool)
    assert 0.0 <= data["confidence"] <= 1.0
    assert data["conflicts"] == [] or all(isinstance(c, dict) for c in data["conflicts"])
    for citation in data["citations"]:
        assert set(citation) == {"kind", "id", "text", "score"} and citation["kind"] in ("passage", "triple")


def test_langchain_invoke(default_pipeline) -> None:
    answer = default_pipeline.invoke("who stars in Hot to Trot")
    assert isinstance(answer, Answer) and contains_answer(answer.text, ["John Candy"]), answer
    same = default_pipeline.invoke({"question": "who stars in Hot to Trot"})
    assert same.text == answer.text


def test_kg_only_refuses_without_a_kg_answer(kg_only_pipeline) -> None:
    assert kg_only_pipeline.reader is None
    answer = kg_only_pipeline.ask("Who conceptualized the piston?")
    assert answer.refused and answer.text == ""
    answer = kg_only_pipeline.ask("what language is Kontroll in")
    assert not answer.refused and contains_answer(answer.text, ["Hungarian"])


def test_components_name_what_the_answers_rest_on(default_pipeline, vanilla_pipeline) -> None:
    """QAPipeline.components: the reader, each trained piece by where it was loaded from, and the confidence rule
    (the calibrated model only for the reader it was fitted on)."""
    from rag.models import resolve_cache_dir
    from rag.pipeline import QAPipeline
    from rag.reader import ReaderConfig, TransformersReader

    components = default_pipeline.components()
    assert components["reader"] == default_pipeline.reader.config.model
    assert components["confidence"] == "calibrated model calibration.json"
    cached = resolve_cache_dir() / "stance"
    assert components["stance"] == (str(cached) if (cached / "stance.json").is_file() else None)
    assert components["reader_adapter"] is None and components["soft_prompt"] is None
    assert vanilla_pipeline.components()["stance"] is None  # vanilla switches the stance step off

    def variant(reader) -> dict:
        return QAPipeline(default_pipeline.index, default_pipeline.config, embedder=default_pipeline.embedder,
                          reader=reader).components()

    adapted = variant(TransformersReader(ReaderConfig(adapter="/models/reader-lora")))  # constructing loads nothing
    assert adapted["reader_adapter"] == "/models/reader-lora" and adapted["confidence"] == "hand-set rule"
    assert adapted["stance"] is None  # none was passed in
    kg_only = variant(None)
    assert kg_only["reader"] is None and kg_only["confidence"] is None
