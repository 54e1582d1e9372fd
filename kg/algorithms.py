"""Graph algorithms for KG retrieval that stay local: Personalized PageRank over the seeds' neighbourhood,
bounded shortest paths between linked entities, and a PPR-ranked subgraph.

Everything here walks the CSR arrays of `KnowledgeGraph` from the given entities outwards and is capped
(nodes, frontier, paths), so the cost depends on the neighbourhood, never on the size of the whole graph.
Edges are used in both directions: a KG's relation direction is a naming choice ("directed_by" vs
"directed"), so "related to the seed" must not depend on it. numpy only (scipy is not a dependency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np

from kg.graph import KnowledgeGraph

# Nodes expanded per BFS level and side in `shortest_paths_between`: past this a hub's neighbourhood is
# sampled (first nodes by id), which keeps one query in milliseconds on multi-million-triple graphs.
MAX_BFS_FRONTIER = 2000


def _rows_at(graph: KnowledgeGraph, nodes: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Triple rows leaving and entering `nodes` (both as int64 arrays)."""
    outs = [graph.out_rows(int(n)) for n in nodes]
    ins = [graph.in_rows(int(n)) for n in nodes]
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(outs) if outs else empty), (np.concatenate(ins) if ins else empty)


def _neighbourhood(graph: KnowledgeGraph, seeds: np.ndarray, hops: int, max_nodes: int) -> np.ndarray:
    """Sorted entity ids within `hops` of `seeds` (either direction), at most `max_nodes`.

    When a level would overflow the cap, the neighbours reached by the most edges from the current set are
    kept: they are the ones PPR would rank highest anyway.
    """
    visited = np.unique(seeds)[:max_nodes]
    frontier = visited
    for _ in range(hops):
        room = max_nodes - len(visited)
        if room <= 0 or not len(frontier):
            break
        out_rows, in_rows = _rows_at(graph, frontier)
        reached = np.concatenate([graph.triples[out_rows, 2], graph.triples[in_rows, 0]])
        nodes, counts = np.unique(reached, return_counts=True)
        fresh = ~np.isin(nodes, visited, assume_unique=True)
        nodes, counts = nodes[fresh], counts[fresh]
        if len(nodes) > room:
            keep = np.argsort(-counts, kind="stable")[:room]
            nodes = nodes[keep]
        frontier = np.sort(nodes)
        visited = np.union1d(visited, frontier)
    return visited


def personalized_pagerank(
    graph: KnowledgeGraph,
    seeds: Mapping[int, float],
    *,
    alpha: float = 0.85,
    iterations: int = 20,
    max_nodes: int = 5000,
) -> dict[int, float]:
    """PPR scores (summing to 1) for the entities within 2 hops of `seeds`, restarting at the seeds.

    `seeds` maps entity id -> restart weight (normalised here). The walk runs on the subgraph induced by the
    2-hop neighbourhood (capped at `max_nodes`), treating each triple as an undirected edge: 2 hops holds
    nearly all of the mass that 20 iterations at alpha=0.85 would put anywhere useful, and it keeps one call
    independent of the graph's size. Nodes with no local edge send their mass back to the seeds.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    weights = {int(e): float(w) for e, w in seeds.items() if w > 0}
    bad = [e for e in weights if not 0 <= e < len(graph.entities)]
    if bad:
        raise ValueError(f"seed entity ids out of range: {bad[:5]}")
    total = sum(weights.values())
    if not weights or total <= 0:
        return {}
    nodes = _neighbourhood(graph, np.fromiter(weights, dtype=np.int64), 2, max(max_nodes, len(weights)))
    n = len(nodes)
    out_rows, _ = _rows_at(graph, nodes)
    heads = np.searchsorted(nodes, graph.triples[out_rows, 0])
    tails_global = graph.triples[out_rows, 2]
    tails = np.searchsorted(nodes, tails_global).clip(max=n - 1)
    inside = nodes[tails] == tails_global
    src = np.concatenate([heads[inside], tails[inside]])
    dst = np.concatenate([tails[inside], heads[inside]])
    degree = np.bincount(src, minlength=n).astype(np.float64)
    restart = np.zeros(n)
    restart[np.searchsorted(nodes, np.fromiter(weights, dtype=np.int64))] = np.fromiter(
        weights.values(), dtype=np.float64
    )
    restart /= restart.sum()
    dangling = degree == 0
    safe_degree = np.where(dangling, 1.0, degree)
    scores = restart.copy()
    for _ in range(iterations):
        spread = np.bincount(dst, weights=(scores / safe_degree)[src], minlength=n)
        scores = alpha * spread + (1.0 - alpha + alpha * scores[dangling].sum()) * restart
    return {int(e): float(s) for e, s in zip(nodes, scores) if s > 0}


def _bfs_level(graph: KnowledgeGraph, frontier: np.ndarray, parents: dict[int, tuple[int, int]]) -> np.ndarray:
    """Expand one BFS level over both edge directions; record (parent, triple row) for new nodes."""
    frontier = frontier[:MAX_BFS_FRONTIER]
    out_rows, in_rows = _rows_at(graph, frontier)
    rows = np.concatenate([out_rows, in_rows])
    src = np.concatenate([graph.triples[out_rows, 0], graph.triples[in_rows, 2]])
    dst = np.concatenate([graph.triples[out_rows, 2], graph.triples[in_rows, 0]])
    new_nodes, first = np.unique(dst, return_index=True)
    fresh = np.fromiter((int(n) not in parents for n in new_nodes), dtype=bool, count=len(new_nodes))
    new_nodes, first = new_nodes[fresh], first[fresh]
    parents.update(zip(new_nodes.tolist(), zip(src[first].tolist(), rows[first].tolist())))
    return new_nodes


def _chain(parents: dict[int, tuple[int, int]], node: int) -> list[int]:
    """Triple rows from the BFS root to `node`, root first."""
    rows = []
    while parents[node][1] >= 0:
        node, row = parents[node]
        rows.append(row)
    return rows[::-1]


def _pair_paths(graph: KnowledgeGraph, a: int, b: int, max_hops: int, limit: int) -> list[list[int]]:
    """Shortest paths (triple rows, a to b) of at most `max_hops`, one per meeting node, via bidirectional BFS."""
    if a == b or limit <= 0:
        return []
    sides = [({a: (a, -1)}, np.array([a], dtype=np.int64), 0), ({b: (b, -1)}, np.array([b], dtype=np.int64), 0)]
    while sides[0][2] + sides[1][2] < max_hops:
        # Expand the smaller frontier: the classic bidirectional-BFS saving on hub-heavy graphs.
        i = 0 if len(sides[0][1]) <= len(sides[1][1]) else 1
        parents, frontier, depth = sides[i]
        if not len(frontier):
            return []
        new_nodes = _bfs_level(graph, frontier, parents)
        sides[i] = (parents, new_nodes, depth + 1)
        other = sides[1 - i][0]
        meets = [n for n in new_nodes.tolist() if n in other]
        if meets:
            pa, pb = sides[0][0], sides[1][0]
            # The other side's nodes at smaller depth give shorter paths: keep only the shortest length.
            lengths = {m: len(_chain(pa, m)) + len(_chain(pb, m)) for m in meets}
            best = min(lengths.values())
            paths = []
            for m in sorted(m for m in meets if lengths[m] == best)[:limit]:
                tail = _chain(pb, m)[::-1]
                paths.append(_chain(pa, m) + tail)
            return paths
    return []


def shortest_paths_between(
    graph: KnowledgeGraph, sources: Sequence[int], *, max_hops: int = 3, max_paths: int = 20
) -> list[list[int]]:
    """Triple-row paths joining each pair of `sources` by a shortest route of at most `max_hops` edges.

    Questions naming two entities ("which film did X and Y both act in") are answered by what lies between
    them. Edges are followed in either direction; each path lists triple rows from the first entity of the
    pair to the second. One path per distinct meeting node (parallel relations between the same two nodes
    count once); at most `max_paths` in all, pairs taken in the order given.
    """
    unique = list(dict.fromkeys(int(s) for s in sources))
    bad = [e for e in unique if not 0 <= e < len(graph.entities)]
    if bad:
        raise ValueError(f"entity ids out of range: {bad[:5]}")
    paths: list[list[int]] = []
    for a, b in combinations(unique, 2):
        paths.extend(_pair_paths(graph, a, b, max_hops, max_paths - len(paths)))
        if len(paths) >= max_paths:
            break
    return paths[:max_paths]


def ppr_subgraph(
    graph: KnowledgeGraph,
    seeds: Mapping[int, float] | Sequence[int],
    *,
    max_triples: int = 50,
    max_entities: int | None = None,
) -> list[int]:
    """Triple rows among the top-PPR entities, best first (by the lower PPR score of the two ends).

    A bounded, relation-agnostic context for the reader when no relation path matched: what is most
    connected to the question's entities. Ranking by the weaker end keeps a triple from riding on a seed's
    score alone. `max_entities` defaults to twice `max_triples`: k entities joined as a tree hold only k - 1
    triples, and the ranking then picks the best of the spare ones.
    """
    weights = dict(seeds) if isinstance(seeds, Mapping) else {int(s): 1.0 for s in seeds}
    scores = personalized_pagerank(graph, weights)
    if not scores or max_triples <= 0:
        return []
    top = sorted(scores, key=lambda e: (-scores[e], e))[: max_entities or 2 * max_triples]
    nodes = np.array(sorted(top), dtype=np.int64)
    score_of = np.array([scores[int(e)] for e in nodes])
    out_rows, _ = _rows_at(graph, nodes)
    tails = graph.triples[out_rows, 2]
    at = np.searchsorted(nodes, tails).clip(max=len(nodes) - 1)
    inside = nodes[at] == tails
    rows = out_rows[inside]
    if not len(rows):
        return []
    head_score = score_of[np.searchsorted(nodes, graph.triples[rows, 0])]
    rank = np.minimum(head_score, score_of[at[inside]])
    order = np.lexsort((rows, -rank))[:max_triples]
    return [int(r) for r in rows[order]]
