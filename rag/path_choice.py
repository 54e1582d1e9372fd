"""Path answers through the reader: when the KG retriever leaves several relation paths with different answers
almost equally matched (`Subgraph.alternatives`), the reader picks one by the log-likelihood of each path's
answers given the paths' triples, instead of generating freely. The chosen path's answers and triples become
the subgraph's candidates, so the answer cites the triples of the chosen path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from kg.types import PathAnswer, RelationPath, Subgraph
from rag.types import Evidence

# Answers per option read by the reader: a path reaching 20 films is judged by its first few.
ANSWERS_PER_OPTION = 3
MAX_EVIDENCE = 12


class OptionScorer(Protocol):
    def score_options(self, question: str, evidence: Sequence[Evidence], options: Sequence[str]) -> list[float]: ...


def path_evidence(alternatives: Sequence[PathAnswer], *, max_triples: int = MAX_EVIDENCE) -> list[Evidence]:
    """The alternatives' triples, interleaved so that each path is shown before any path's second triple."""
    evidence: list[Evidence] = []
    seen: set[str] = set()
    for depth in range(max((len(a.triples) for a in alternatives), default=0)):
        for alternative in alternatives:
            if depth < len(alternative.triples) and len(evidence) < max_triples:
                triple = alternative.triples[depth]
                if triple.id not in seen:
                    seen.add(triple.id)
                    label = f"T{len(evidence) + 1}"
                    evidence.append(Evidence("triple", triple.id, triple.verbalize(), alternative.similarity, label=label))
    return evidence


def option_text(alternative: PathAnswer) -> str:
    return ", ".join(alternative.answers[:ANSWERS_PER_OPTION])


def choose_path(reader: OptionScorer, question: str, subgraph: Subgraph) -> tuple[Subgraph, list[float]]:
    """The subgraph re-pointed at the alternative the reader finds most likely (and the per-option scores)."""
    alternatives = subgraph.alternatives
    if len(alternatives) < 2:
        return subgraph, []
    scores = reader.score_options(question, path_evidence(alternatives), [option_text(a) for a in alternatives])
    best = max(range(len(alternatives)), key=lambda i: scores[i])
    if best == 0:
        return subgraph, scores
    chosen = alternatives[best]
    assert subgraph.path is not None
    return (
        replace(
            subgraph,
            candidates=chosen.answers,
            candidate_triples=chosen.triples,
            path=RelationPath(relation=chosen.path, inverse=chosen.path.startswith("~"), score=subgraph.path.score),
            alternatives=(chosen, *(a for i, a in enumerate(alternatives) if i != best)),
        ),
        scores,
    )
