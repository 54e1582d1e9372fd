"""kg.algorithms on hand-made graphs whose answers are known: local PPR, bounded shortest paths, PPR subgraph."""

from __future__ import annotations

import numpy as np
import pytest

from kg.algorithms import personalized_pagerank, ppr_subgraph, shortest_paths_between
from kg.graph import KnowledgeGraph
from kg.types import Triple

# A chain a-b-c-d-e plus a star around b, and an island x-y that is not connected to anything else.
TRIPLES = [
    Triple("a", "r", "b"),
    Triple("b", "r", "c"),
    Triple("c", "r", "d"),
    Triple("d", "r", "e"),
    Triple("s1", "q", "b"),
    Triple("b", "q", "s2"),
    Triple("x", "r", "y"),
]


@pytest.fixture
def graph() -> KnowledgeGraph:
    return KnowledgeGraph.from_triples(TRIPLES)


def ids(graph: KnowledgeGraph, *names: str) -> list[int]:
    return [graph.entity_ids[n] for n in names]


def test_ppr_sums_to_one_and_ranks_neighbours_above_far_nodes(graph: KnowledgeGraph) -> None:
    (b,) = ids(graph, "b")
    scores = personalized_pagerank(graph, {b: 1.0})
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-9)
    name = {graph.entity_ids[n]: n for n in graph.entities}
    ranked = [name[e] for e in sorted(scores, key=scores.get, reverse=True)]
    assert ranked[0] == "b"
    assert set(ranked[1:5]) == {"a", "c", "s1", "s2"}  # one hop, both edge directions
    assert scores[graph.entity_ids["c"]] > scores[graph.entity_ids["d"]]
    # Local only: 2 hops from b, so e (3 hops) and the island never appear.
    assert not {"e", "x", "y"} & set(ranked)


def test_ppr_respects_max_nodes_and_weights(graph: KnowledgeGraph) -> None:
    b, d = ids(graph, "b", "d")
    assert len(personalized_pagerank(graph, {b: 1.0}, max_nodes=3)) <= 3
    toward_d = personalized_pagerank(graph, {b: 0.1, d: 0.9})
    assert toward_d[d] > toward_d[b]


def test_ppr_isolated_seed_keeps_all_mass_and_bad_input(graph: KnowledgeGraph) -> None:
    lonely = KnowledgeGraph(["solo", "a", "b"], ["r"], np.array([[1, 0, 2]], dtype=np.int32))
    assert personalized_pagerank(lonely, {0: 1.0}) == pytest.approx({0: 1.0})
    assert personalized_pagerank(graph, {}) == {}
    with pytest.raises(ValueError):
        personalized_pagerank(graph, {10_000: 1.0})
    with pytest.raises(ValueError):
        personalized_pagerank(graph, {0: 1.0}, alpha=1.0)


def test_shortest_path_two_hops(graph: KnowledgeGraph) -> None:
    a, c = ids(graph, "a", "c")
    paths = shortest_paths_between(graph, [a, c])
    assert len(paths) == 1
    assert [graph.triple(r) for r in paths[0]] == [Triple("a", "r", "b"), Triple("b", "r", "c")]


def test_shortest_path_follows_edges_backwards(graph: KnowledgeGraph) -> None:
    s2, s1 = ids(graph, "s2", "s1")
    (path,) = shortest_paths_between(graph, [s2, s1])
    assert [graph.triple(r) for r in path] == [Triple("b", "q", "s2"), Triple("s1", "q", "b")]


def test_no_path_when_disconnected_or_too_far(graph: KnowledgeGraph) -> None:
    a, e, x = ids(graph, "a", "e", "x")
    assert shortest_paths_between(graph, [a, x]) == []
    assert shortest_paths_between(graph, [a, e], max_hops=3) == []  # 4 hops apart
    assert len(shortest_paths_between(graph, [a, e], max_hops=4)[0]) == 4
    assert shortest_paths_between(graph, [a, a]) == []


def test_one_path_per_middle_node_and_max_paths() -> None:
    # u and v share three neighbours m0..m2: three shortest 2-hop paths.
    triples = [Triple("u", "r", f"m{i}") for i in range(3)] + [Triple(f"m{i}", "r", "v") for i in range(3)]
    g = KnowledgeGraph.from_triples(triples)
    u, v = g.entity_ids["u"], g.entity_ids["v"]
    paths = shortest_paths_between(g, [u, v])
    assert len(paths) == 3 and all(len(p) == 2 for p in paths)
    assert {g.triple(p[0]).tail for p in paths} == {"m0", "m1", "m2"}
    assert len(shortest_paths_between(g, [u, v], max_paths=2)) == 2


def test_ppr_subgraph_bounded_and_local(graph: KnowledgeGraph) -> None:
    (b,) = ids(graph, "b")
    rows = ppr_subgraph(graph, [b], max_triples=3)
    assert len(rows) == 3
    used = {graph.triple(r) for r in rows}
    assert all("b" in (t.head, t.tail) for t in used)  # the seed's own edges rank first
    everything = ppr_subgraph(graph, {b: 1.0}, max_triples=50)
    assert Triple("x", "r", "y") not in {graph.triple(r) for r in everything}
    assert len(everything) == len(set(everything))
