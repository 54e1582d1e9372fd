"""Relation paths: following them through the graph and finding the one that explains a gold answer set.

A path is a tuple of steps `(relation, inverse)`; `inverse=True` walks from tail to head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kg.graph import KnowledgeGraph

Step = tuple[str, bool]
Path = tuple[Step, ...]

# Frontiers past this size are cut: a path through a hub ("English", "Drama") says little about the answer.
MAX_FRONTIER = 3000


def path_to_text(path: Path) -> str:
    return " -> ".join(f"{'~' if inverse else ''}{relation}" for relation, inverse in path)


@dataclass(frozen=True)
class PathResult:
    """Entities a path reaches from a start entity, each with how many routes reach it, and the triple rows used."""

    counts: Counter
    rows: list[np.ndarray]


def follow(graph: KnowledgeGraph, start: int, path: Path) -> PathResult:
    rel_ids = {name: i for i, name in enumerate(graph.relations)}
    frontier: Counter = Counter({start: 1})
    used_rows: list[np.ndarray] = []
    for relation, inverse in path:
        relation_id = rel_ids.get(relation)
        if relation_id is None:
            return PathResult(Counter(), used_rows)
        reached: Counter = Counter()
        step_rows = []
        for entity, routes in list(frontier.items())[:MAX_FRONTIER]:
            rows = graph.rows_between(entity, relation_id, inverse=inverse)
            if len(rows):
                step_rows.append(rows)
                for target in graph.triples[rows, 0 if inverse else 2]:
                    reached[int(target)] += routes
        used_rows.append(np.concatenate(step_rows) if step_rows else np.zeros(0, dtype=np.int64))
        frontier = reached
        if not frontier:
            break
    return PathResult(frontier, used_rows)


def answer_entities(graph: KnowledgeGraph, start: int, path: Path) -> list[int]:
    """Entities the path reaches, most routes first; the start entity itself is never its own answer."""
    result = follow(graph, start, path)
    ranked = sorted((e for e in result.counts if e != start), key=lambda e: (-result.counts[e], graph.entities[e]))
    # ...unless nothing else is reached ("the offspring of X's mother" is X).
    return ranked or ([start] if start in result.counts else [])


def enumerate_paths(
    graph: KnowledgeGraph,
    start: int,
    max_hops: int,
    *,
    max_paths: int = 400,
    keep_relation: Callable[[str], bool] | None = None,
    max_branches: int | None = None,
) -> list[Path]:
    """All relation paths up to `max_hops` that exist from `start` (breadth first, bounded).

    `keep_relation` prunes steps before they are walked; `max_branches` caps how many paths of one length are
    extended to the next.
    """
    paths: list[Path] = []
    layer: list[tuple[Path, set[int]]] = [((), {start})]
    for _ in range(max_hops):
        next_layer = []
        for path, frontier in layer:
            steps = _steps_from(graph, list(frontier)[:200], keep_relation)
            for step, reached in steps.items():
                new_path = path + (step,)
                paths.append(new_path)
                next_layer.append((new_path, reached))
                if len(paths) >= max_paths:
                    return paths
        layer = next_layer if max_branches is None else next_layer[:max_branches]
    return paths


def _steps_from(
    graph: KnowledgeGraph, nodes: list[int], keep_relation: Callable[[str], bool] | None
) -> dict[Step, set[int]]:
    """Every (relation, direction) leaving `nodes` and the entities it reaches, vectorised over the nodes.

    Ordered as a per-node walk would meet them (node by node; out-edges, then in-edges; by relation id), so the
    callers' caps cut the same paths.
    """
    found: list[tuple[tuple[int, int, int], Step, set[int]]] = []
    for inverse in (False, True):
        row_lists = [graph.in_rows(n) if inverse else graph.out_rows(n) for n in nodes]
        if not any(len(rows) for rows in row_lists):
            continue
        rows = np.concatenate(row_lists)
        positions = np.repeat(np.arange(len(nodes)), [len(r) for r in row_lists])
        relations = graph.triples[rows, 1]
        targets = graph.triples[rows, 0 if inverse else 2]
        for relation_id in np.unique(relations).tolist():
            name = graph.relations[relation_id]
            if keep_relation is not None and not keep_relation(name):
                continue
            mask = relations == relation_id
            first = int(positions[mask].min())
            found.append(((first, int(inverse), relation_id), (name, inverse), set(targets[mask].tolist())))
    found.sort(key=lambda item: item[0])
    return {step: reached for _, step, reached in found}


def best_paths_for_answers(graph: KnowledgeGraph, start: int, answers: set[int], *, hops: int) -> tuple[list[Path], float]:
    """The paths of exactly `hops` steps whose reached sets best match `answers` (F1), for labelling questions.

    Several paths tie when the question cannot tell them apart on this KG (the film's writer is also its
    director); all of them are returned, and exemplar voting sorts them out across questions.
    """
    best: list[Path] = []
    best_f1 = 0.0
    for path in enumerate_paths(graph, start, hops, max_paths=2000):
        if len(path) != hops:
            continue
        reached = set(answer_entities(graph, start, path))
        hit = len(reached & answers)
        if not hit:
            continue
        precision, recall = hit / len(reached), hit / len(answers)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1 + 1e-9:
            best, best_f1 = [path], f1
        elif abs(f1 - best_f1) <= 1e-9:
            best.append(path)
    return best, best_f1
