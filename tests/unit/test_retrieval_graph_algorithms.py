"""KGRetriever with kg.algorithms wired in: shortest paths between 2+ linked entities, PPR context fill."""

from __future__ import annotations

from kg.graph import KnowledgeGraph
from kg.retrieval import KGRetriever, KGRetrieverConfig
from kg.types import Triple

GRAPH = [
    Triple("Harbor Lights", "starred_actors", "Ann Lee"),
    Triple("Harbor Lights", "starred_actors", "Bob Stone"),
    Triple("Harbor Lights", "release_year", "1999"),
    Triple("Night Train", "starred_actors", "Ann Lee"),
    Triple("Cold Summer", "starred_actors", "Bob Stone"),
    Triple("Cold Summer", "directed_by", "Cy Moor"),
]
QUESTION = "which film did Ann Lee and Bob Stone both star in"


def _retrieve(fake_embedder_cls, **options) -> tuple[KnowledgeGraph, object]:
    graph = KnowledgeGraph.from_triples(GRAPH)
    config = KGRetrieverConfig(use_exemplars=False, **options)
    return graph, KGRetriever(graph, fake_embedder_cls(), config).retrieve(QUESTION)


def test_shortest_paths_join_two_linked_entities(fake_embedder_cls) -> None:
    _, subgraph = _retrieve(fake_embedder_cls, connect_entities=True)
    assert {e.name for e in subgraph.entities} >= {"Ann Lee", "Bob Stone"}
    joining = {Triple("Harbor Lights", "starred_actors", "Ann Lee"), Triple("Harbor Lights", "starred_actors", "Bob Stone")}
    assert joining <= {t.triple for t in subgraph.triples}
    assert subgraph.extra["connecting_triples"] == 2


def test_connecting_is_off_by_default_and_needs_two_confident_links(fake_embedder_cls) -> None:
    _, subgraph = _retrieve(fake_embedder_cls)
    assert subgraph.extra["connecting_triples"] == 0
    _, strict = _retrieve(fake_embedder_cls, connect_entities=True, connect_min_link=0.99)
    assert strict.extra["connecting_triples"] == 0


def test_ppr_context_brings_in_the_seeds_neighbourhood_within_budget(fake_embedder_cls) -> None:
    # (Harbor Lights, release_year, 1999) touches no linked entity: only the PPR fill reaches it.
    year = Triple("Harbor Lights", "release_year", "1999")
    _, plain = _retrieve(fake_embedder_cls)
    assert year not in {t.triple for t in plain.triples}
    _, with_ppr = _retrieve(fake_embedder_cls, ppr_context=True)
    assert year in {t.triple for t in with_ppr.triples}
    _, small = _retrieve(fake_embedder_cls, ppr_context=True, max_triples=3)
    assert len(small.triples) == 3


def test_near_equal_rival_paths_are_kept_as_alternatives(fake_embedder_cls, monkeypatch) -> None:
    graph = KnowledgeGraph.from_triples(
        [
            Triple("Crash", "directed_by", "Paul Haggis"),
            Triple("Crash", "written_by", "Bobby Moresco"),
            Triple("Crash", "has_genre", "Drama"),
            Triple("Crash", "release_year", "2004"),
        ]
    )
    scores = {
        (("directed_by", False),): 0.80,
        (("written_by", False),): 0.78,  # within the 0.05 margin: kept
        (("has_genre", False),): 0.60,  # far behind: not a rival
        (("release_year", False),): 0.79,
    }
    monkeypatch.setattr(KGRetriever, "_score_paths", lambda self, query, entity_id: dict(scores))
    retriever = KGRetriever(graph, fake_embedder_cls(), KGRetrieverConfig(use_exemplars=False, max_choices=3))
    subgraph = retriever.retrieve("who made Crash")
    assert subgraph.candidates == ("Paul Haggis",)
    assert [a.path for a in subgraph.alternatives] == ["directed_by", "release_year", "written_by"]
    assert subgraph.alternatives[2].answers == ("Bobby Moresco",)
    assert subgraph.alternatives[2].triples == (Triple("Crash", "written_by", "Bobby Moresco"),)
    clear = KGRetriever(graph, fake_embedder_cls(), KGRetrieverConfig(use_exemplars=False, choice_margin=0.001))
    assert clear.retrieve("who made Crash").alternatives == ()
