"""Lexical step evidence: composing relation paths no exemplar carries from the question's words."""

from __future__ import annotations

import pytest

from kg import retrieval
from kg.graph import KnowledgeGraph
from kg.retrieval import KGRetriever, LexicalSteps
from kg.types import Triple

RELATIONS = ["parents", "spouse", "place_of_death", "cause_of_death"]
EXEMPLARS = [
    ("who is E 's mom ?", ("parents",)),
    ("name E 's mom", ("parents",)),
    ("who is the darling of E ?", ("spouse",)),
    ("E 's darling ?", ("spouse",)),
]


def test_literal_and_learned_evidence() -> None:
    lexical = LexicalSteps(RELATIONS, EXEMPLARS)
    assert lexical.evidence("death", "place_of_death") == 1.0
    assert lexical.evidence("mom", "parents") == 1.0  # learned: both "mom" questions carry parents
    assert lexical.evidence("mom", "spouse") == 0.0
    assert lexical.evidence("who", "parents") == 0.0  # stop word, never content


def test_multiword_name_beats_partial_match_and_short_paths_pay_for_leftovers() -> None:
    lexical = LexicalSteps(RELATIONS, EXEMPLARS)
    words = lexical.content_words("what is E 's mom 's place of death ?")
    assert words == ["mom", "place", "death"]
    full = lexical.score(words, (("parents", False), ("place_of_death", False)))
    partial = lexical.score(words, (("parents", False), ("cause_of_death", False)))
    short = lexical.score(words, (("parents", False),))
    assert full == pytest.approx(1.0)
    assert full > partial
    assert full > short


def test_retriever_composes_an_unseen_two_hop_path(fake_embedder_cls, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KGRAG_CACHE", str(tmp_path))
    rows = [{"question": q, "path": [[r, False] for r in path], "f1": 1.0, "source": "t"} for q, path in EXEMPLARS]
    monkeypatch.setattr(retrieval, "load_exemplars", lambda: rows)
    graph = KnowledgeGraph.from_triples(
        [
            Triple("Alice Smith", "parents", "Mary Smith"),
            Triple("Mary Smith", "place_of_death", "Potsdam"),
            Triple("Mary Smith", "cause_of_death", "Fever"),
            Triple("Alice Smith", "spouse", "Bob Jones"),
        ]
    )
    retriever = KGRetriever(graph, fake_embedder_cls())
    subgraph = retriever.retrieve("what is Alice Smith 's mom 's place of death ?")
    assert subgraph.candidates[0] == "Potsdam"
    assert subgraph.path is not None and "place_of_death" in subgraph.path.relation
