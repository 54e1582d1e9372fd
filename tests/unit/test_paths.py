"""Relation paths on a tiny hand-made graph: follow, answer_entities, enumerate_paths, best_paths_for_answers."""

from __future__ import annotations

import pytest

from kg.graph import KnowledgeGraph
from kg.paths import answer_entities, best_paths_for_answers, enumerate_paths, follow, path_to_text
from kg.types import Triple


@pytest.fixture
def graph() -> KnowledgeGraph:
    return KnowledgeGraph.from_triples(
        [
            Triple("Inception", "directed_by", "Christopher Nolan"),
            Triple("Interstellar", "directed_by", "Christopher Nolan"),
            Triple("Dunkirk", "directed_by", "Christopher Nolan"),
            Triple("Dunkirk", "written_by", "Christopher Nolan"),
            Triple("Inception", "starred_actors", "Leonardo DiCaprio"),
            Triple("Inception", "starred_actors", "Elliot Page"),
            Triple("Interstellar", "starred_actors", "Matthew McConaughey"),
            Triple("Titanic", "starred_actors", "Leonardo DiCaprio"),
            Triple("Titanic", "directed_by", "James Cameron"),
            Triple("Inception", "release_year", "2010"),
            Triple("Interstellar", "release_year", "2014"),
        ]
    )


def ids(graph: KnowledgeGraph, *names: str) -> set[int]:
    return {graph.entity_ids[n] for n in names}


def named(graph: KnowledgeGraph, entity_ids) -> list[str]:
    return [graph.entities[e] for e in entity_ids]


def test_follow_one_hop_and_rows(graph: KnowledgeGraph) -> None:
    result = follow(graph, graph.entity_ids["Christopher Nolan"], (("directed_by", True),))
    assert set(result.counts) == ids(graph, "Inception", "Interstellar", "Dunkirk")
    assert len(result.rows) == 1
    assert {graph.triple(int(r)).relation for r in result.rows[0]} == {"directed_by"}


def test_follow_two_hops_counts_routes(graph: KnowledgeGraph) -> None:
    # Films of DiCaprio -> their directors: Nolan (Inception) and Cameron (Titanic), one route each.
    path = (("starred_actors", True), ("directed_by", False))
    result = follow(graph, graph.entity_ids["Leonardo DiCaprio"], path)
    assert set(named(graph, result.counts)) == {"Christopher Nolan", "James Cameron"}
    assert all(count == 1 for count in result.counts.values())
    # Actors in Nolan's films.
    path = (("directed_by", True), ("starred_actors", False))
    assert set(named(graph, follow(graph, graph.entity_ids["Christopher Nolan"], path).counts)) == {
        "Leonardo DiCaprio",
        "Elliot Page",
        "Matthew McConaughey",
    }
    # DiCaprio is reached back through both of his films: two routes.
    path = (("starred_actors", True), ("starred_actors", False))
    counts = follow(graph, graph.entity_ids["Leonardo DiCaprio"], path).counts
    assert counts[graph.entity_ids["Leonardo DiCaprio"]] == 2 and counts[graph.entity_ids["Elliot Page"]] == 1


def test_follow_unknown_relation_or_dead_end(graph: KnowledgeGraph) -> None:
    assert not follow(graph, graph.entity_ids["Inception"], (("no_such_relation", False),)).counts
    assert not follow(graph, graph.entity_ids["2010"], (("directed_by", False),)).counts


def test_answer_entities_excludes_start_and_ranks_by_routes(graph: KnowledgeGraph) -> None:
    # Co-stars of DiCaprio: the path also leads back to DiCaprio himself, who is not his own answer...
    path = (("starred_actors", True), ("starred_actors", False))
    assert named(graph, answer_entities(graph, graph.entity_ids["Leonardo DiCaprio"], path)) == ["Elliot Page"]
    # ...unless the start is the only entity reached (McConaughey is Interstellar's only actor here).
    mcc = graph.entity_ids["Matthew McConaughey"]
    assert named(graph, answer_entities(graph, mcc, path)) == ["Matthew McConaughey"]
    # Years of Nolan's films; ties broken by name.
    path = (("directed_by", True), ("release_year", False))
    assert named(graph, answer_entities(graph, graph.entity_ids["Christopher Nolan"], path)) == ["2010", "2014"]
    # Nolan both directed and wrote Dunkirk: routes through both relations are counted per path only.
    path = (("directed_by", True),)
    assert named(graph, answer_entities(graph, graph.entity_ids["Christopher Nolan"], path)) == [
        "Dunkirk",
        "Inception",
        "Interstellar",
    ]


def test_enumerate_paths(graph: KnowledgeGraph) -> None:
    paths = enumerate_paths(graph, graph.entity_ids["Christopher Nolan"], 2)
    assert (("directed_by", True),) in paths and (("written_by", True),) in paths
    assert (("directed_by", True), ("release_year", False)) in paths
    assert all(1 <= len(p) <= 2 for p in paths)
    assert len(enumerate_paths(graph, graph.entity_ids["Christopher Nolan"], 2, max_paths=2)) == 2


def test_best_paths_for_answers(graph: KnowledgeGraph) -> None:
    nolan = graph.entity_ids["Christopher Nolan"]
    paths, f1 = best_paths_for_answers(graph, nolan, ids(graph, "Inception", "Interstellar", "Dunkirk"), hops=1)
    assert paths == [(("directed_by", True),)] and f1 == pytest.approx(1.0)
    # Dunkirk alone: ~written_by reaches exactly it (F1 1), ~directed_by reaches 3 films (F1 0.5).
    paths, f1 = best_paths_for_answers(graph, nolan, ids(graph, "Dunkirk"), hops=1)
    assert paths == [(("written_by", True),)] and f1 == pytest.approx(1.0)
    paths, f1 = best_paths_for_answers(graph, nolan, ids(graph, "2010", "2014"), hops=2)
    assert paths == [(("directed_by", True), ("release_year", False))] and f1 == pytest.approx(1.0)
    # Nothing reachable matches: no path.
    paths, f1 = best_paths_for_answers(graph, nolan, ids(graph, "James Cameron"), hops=1)
    assert paths == [] and f1 == 0.0


def test_best_paths_keeps_ties() -> None:
    # The only film of this person is one they both wrote and directed: the answer cannot tell the paths apart.
    graph = KnowledgeGraph.from_triples(
        [Triple("Tenet", "directed_by", "Jo Smith"), Triple("Tenet", "written_by", "Jo Smith"), Triple("Tenet", "release_year", "2020")]
    )
    paths, f1 = best_paths_for_answers(graph, graph.entity_ids["Jo Smith"], {graph.entity_ids["Tenet"]}, hops=1)
    assert sorted(paths) == [(("directed_by", True),), (("written_by", True),)] and f1 == pytest.approx(1.0)


def test_best_path_partial_match_f1(graph: KnowledgeGraph) -> None:
    # Gold {Inception, Titanic} from DiCaprio: ~starred_actors reaches exactly those.
    leo = graph.entity_ids["Leonardo DiCaprio"]
    paths, f1 = best_paths_for_answers(graph, leo, ids(graph, "Inception", "Titanic"), hops=1)
    assert paths == [(("starred_actors", True),)] and f1 == pytest.approx(1.0)
    # Gold {Inception, Titanic, Interstellar}: precision 1, recall 2/3.
    paths, f1 = best_paths_for_answers(graph, leo, ids(graph, "Inception", "Titanic", "Interstellar"), hops=1)
    assert paths == [(("starred_actors", True),)] and f1 == pytest.approx(0.8)


def test_path_to_text() -> None:
    assert path_to_text((("directed_by", True), ("release_year", False))) == "~directed_by -> release_year"
