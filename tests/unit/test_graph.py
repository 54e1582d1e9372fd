"""KnowledgeGraph: construction, CSR queries, and a pickle-free save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kg.graph import ENTITIES_FILE, RELATIONS_FILE, TRIPLES_FILE, KnowledgeGraph
from kg.types import Triple
from rag.errors import IndexLoadError

TRIPLES = [
    Triple("Inception", "directed_by", "Christopher Nolan"),
    Triple("Interstellar", "directed_by", "Christopher Nolan"),
    Triple("Inception", "starred_actors", "Leonardo DiCaprio"),
    Triple("Inception", "starred_actors", "Elliot Page"),
    Triple("Titanic", "starred_actors", "Leonardo DiCaprio"),
    Triple("Inception", "release_year", "2010"),
    Triple("Inception", "release_year", "2010"),  # duplicate: stored once
]


@pytest.fixture
def graph() -> KnowledgeGraph:
    return KnowledgeGraph.from_triples(TRIPLES)


def names(graph: KnowledgeGraph, ids) -> set[str]:
    return {graph.entities[int(i)] for i in ids}


def test_from_triples_deduplicates_and_names(graph: KnowledgeGraph) -> None:
    assert len(graph) == 6
    assert set(graph.relations) == {"directed_by", "starred_actors", "release_year"}
    assert len(graph.entities) == len(set(graph.entities)) == 7
    assert {graph.triple(row) for row in range(len(graph))} == set(TRIPLES)
    assert graph.triples.dtype == np.int32


def test_hop_both_directions(graph: KnowledgeGraph) -> None:
    e, r = graph.entity_ids, {name: i for i, name in enumerate(graph.relations)}
    assert names(graph, graph.hop(e["Inception"], r["starred_actors"], inverse=False)) == {"Leonardo DiCaprio", "Elliot Page"}
    assert names(graph, graph.hop(e["Leonardo DiCaprio"], r["starred_actors"], inverse=True)) == {"Inception", "Titanic"}
    assert names(graph, graph.hop(e["Christopher Nolan"], r["directed_by"], inverse=True)) == {"Inception", "Interstellar"}
    # No edge of that relation in that direction.
    assert len(graph.hop(e["Christopher Nolan"], r["directed_by"], inverse=False)) == 0
    assert len(graph.hop(e["Titanic"], r["directed_by"], inverse=False)) == 0


def test_relations_at_counts_edges_per_direction(graph: KnowledgeGraph) -> None:
    rel = graph.relations
    at_inception = {(rel[r], inv, n) for r, inv, n in graph.relations_at(graph.entity_ids["Inception"])}
    assert at_inception == {("directed_by", False, 1), ("starred_actors", False, 2), ("release_year", False, 1)}
    at_leo = {(rel[r], inv, n) for r, inv, n in graph.relations_at(graph.entity_ids["Leonardo DiCaprio"])}
    assert at_leo == {("starred_actors", True, 2)}
    assert graph.degree(graph.entity_ids["Inception"]) == 4
    assert graph.degree(graph.entity_ids["Christopher Nolan"]) == 2


def test_rows_between_returns_the_matching_triples(graph: KnowledgeGraph) -> None:
    r = graph.relations.index("starred_actors")
    rows = graph.rows_between(graph.entity_ids["Leonardo DiCaprio"], r, inverse=True)
    assert {graph.triple(int(row)) for row in rows} == {TRIPLES[2], TRIPLES[4]}
    rows = graph.rows_between(graph.entity_ids["Inception"], r, inverse=False)
    assert {graph.triple(int(row)).tail for row in rows} == {"Leonardo DiCaprio", "Elliot Page"}


def test_save_load_round_trip_without_pickle(graph: KnowledgeGraph, tmp_path: Path) -> None:
    folder = tmp_path / "kg"
    written = graph.save(folder)
    assert sorted(written) == sorted([ENTITIES_FILE, RELATIONS_FILE, TRIPLES_FILE])
    # Plain JSON and a plain .npy: loadable with pickle disabled.
    assert json.loads((folder / ENTITIES_FILE).read_text(encoding="utf-8")) == graph.entities
    raw = np.load(folder / TRIPLES_FILE, allow_pickle=False)
    assert raw.dtype == np.int32 and raw.shape == (6, 3)
    loaded = KnowledgeGraph.load(folder)
    assert loaded.entities == graph.entities and loaded.relations == graph.relations
    assert np.array_equal(loaded.triples, graph.triples)
    e, r = loaded.entity_ids["Inception"], loaded.relations.index("starred_actors")
    assert names(loaded, loaded.hop(e, r, inverse=False)) == {"Leonardo DiCaprio", "Elliot Page"}


def test_non_ascii_names_round_trip(tmp_path: Path) -> None:
    graph = KnowledgeGraph.from_triples([Triple("Möbius", "directed_by", "Kim Ki-duk"), Triple("Amélie", "in_language", "Français")])
    graph.save(tmp_path / "kg")
    assert KnowledgeGraph.load(tmp_path / "kg").entities == graph.entities


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda f: (f / TRIPLES_FILE).write_bytes(b"not a numpy file"),
        lambda f: (f / ENTITIES_FILE).write_text("[unterminated", encoding="utf-8"),
        lambda f: (f / RELATIONS_FILE).unlink(),
        # An object array needs pickle to load: refused, never executed.
        lambda f: np.save(f / TRIPLES_FILE, np.array([{"x": 1}], dtype=object), allow_pickle=True),
        # Ids past the end of the name lists.
        lambda f: np.save(f / TRIPLES_FILE, np.array([[0, 0, 99]], dtype=np.int32)),
        # Wrong shape.
        lambda f: np.save(f / TRIPLES_FILE, np.zeros((2, 4), dtype=np.int32)),
    ],
    ids=["garbage-npy", "bad-json", "missing-file", "pickled-object", "ids-out-of-range", "wrong-shape"],
)
def test_corrupt_graph_files_raise_index_load_error(graph: KnowledgeGraph, tmp_path: Path, corrupt) -> None:
    folder = tmp_path / "kg"
    graph.save(folder)
    corrupt(folder)
    with pytest.raises(IndexLoadError):
        KnowledgeGraph.load(folder)


def test_to_networkx_view(graph: KnowledgeGraph) -> None:
    view = graph.to_networkx(TRIPLES[:3])
    assert view.has_edge("Inception", "Christopher Nolan")
    assert view.number_of_edges() == 3
