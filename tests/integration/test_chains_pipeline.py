"""Two-passage chains in a real pipeline (real embedder, real FAISS, the packaged reader): a bridge passage that
dense top-k misses is found by a second-hop query, and the reader answers from the chain."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from indexes.store import load_index
from rag.config import make_config
from rag.pipeline import QAPipeline

pytestmark = pytest.mark.integration

QUESTION = "In which city was the architect of the Orrefors Glass Pavilion born?"
# Invented passages: the answer needs the pavilion's passage (which names the architect) and the architect's.
PASSAGES = [
    ("pavilion", "Orrefors Glass Pavilion",
     "The Orrefors Glass Pavilion is an exhibition hall for glass art, opened in 1998. It was designed by Marta Lindqvist."),
    ("architect", "Marta Lindqvist",
     "Marta Lindqvist is a Swedish architect. She was born in Kalmar in 1961 and studied at the Royal Institute "
     "of Technology in Stockholm."),
    ("kosta", "Kosta Glass Pavilion",
     "The Kosta Glass Pavilion is an exhibition hall of glass art in the village of Kosta, opened in 2001."),
    ("village", "Orrefors",
     "Orrefors is a small village in Småland, Sweden, with a glassworks founded in 1898."),
    ("berg", "Anders Berg",
     "Anders Berg is a Swedish architect of exhibition halls and glass buildings, born in the city of Uppsala."),
    ("museum", "The Glass Factory",
     "The Glass Factory is a museum of glass art in Boda, opened in 2011."),
]


@pytest.fixture(scope="module")
def bridge_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from indexes.build import BuildConfig, build_index

    folder = tmp_path_factory.mktemp("bridge")
    source = folder / "passages.jsonl"
    source.write_text("".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in PASSAGES),
                      encoding="utf-8")
    return Path(build_index(folder / "index", BuildConfig(passages=(str(source),), progress=False)).path)


def pipeline_over(index_dir: Path, default_pipeline, **options) -> QAPipeline:
    """A default-preset pipeline over `index_dir` that shares the session's loaded embedder and reader."""
    return QAPipeline(load_index(index_dir), make_config(top_k=2, **options), embedder=default_pipeline.embedder,
                      reader=default_pipeline.reader)


def test_chain_finds_the_bridge_passage_that_dense_top_k_misses(bridge_index: Path, default_pipeline) -> None:
    chained = pipeline_over(bridge_index, default_pipeline, passage_chains=True)
    dense_top = [h.passage.id for h in chained.dense.retrieve(QUESTION, top_k=2)]
    assert "architect" not in dense_top  # otherwise this test would not exercise the second hop

    chain, pool = chained.select_chain(QUESTION)
    assert [h.passage.id for h in chain] == ["pavilion", "architect"]
    assert all("chain" in h.scores and "question" in h.scores for h in chain)
    assert sorted(h.passage.id for h in pool) == sorted(i for i, _, _ in PASSAGES)  # both hops, each document once

    answer = chained.ask(QUESTION)
    assert not answer.refused and "kalmar" in answer.text.lower()
    assert "architect" in {c.id for c in answer.citations}

    plain = pipeline_over(bridge_index, default_pipeline, passage_chains=False).ask(QUESTION)
    assert "kalmar" not in plain.text.lower()  # the dense top 2 alone does not reach the answer


def test_the_default_config_chains_unless_a_trained_passage_selector_is_loaded(bridge_index: Path,
                                                                               default_pipeline) -> None:
    default = pipeline_over(bridge_index, default_pipeline)
    assert default.config.passage_chains is None and default.uses_chains
    assert "architect" in {c.id for c in default.ask(QUESTION).citations}
    trained = object()  # only its presence matters here: a loaded reranker or gate selects the passages
    assert not QAPipeline(default.index, default.config, embedder=default.embedder, reader=None,
                          reranker=trained).uses_chains
    assert not QAPipeline(default.index, default.config, embedder=default.embedder, reader=None,
                          gate=trained).uses_chains
    assert QAPipeline(default.index, replace(default.config, gate_on_passages=False), embedder=default.embedder,
                      reader=None, gate=trained).uses_chains
    assert QAPipeline(default.index, replace(default.config, passage_chains=True), embedder=default.embedder,
                      reader=None, reranker=trained).uses_chains


def test_an_off_corpus_question_gets_no_chain_and_is_refused(bridge_index: Path, default_pipeline) -> None:
    chained = pipeline_over(bridge_index, default_pipeline, passage_chains=True)
    question = "Who conceptualized the piston?"
    chain, pool = chained.select_chain(question)
    assert chain == [] and pool  # candidates were found, none close enough to the question to show the reader
    assert max(h.score for h in pool) < chained.config.min_passage_score
    assert chained.ask(question).refused
