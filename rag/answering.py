"""Turning retrieved evidence and a reader's output into an `Answer`: evidence labels, KG set answers,
reader confidence and refusal, citations. Pure functions: no models here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kg.types import Subgraph
from rag.metrics import normalize_answer
from rag.reader import ReaderOutput
from rag.types import Answer, Citation, Evidence, ScoredPassage



def make_evidence(subgraph: Subgraph | None, passages: Sequence[ScoredPassage], *, max_triples: int) -> list[Evidence]:
    """Triples first (T1..), then passages (P1..), each with the label the reader cites."""
    evidence: list[Evidence] = []
    if subgraph is not None:
        for number, scored in enumerate(subgraph.triples[:max_triples], start=1):
            t = scored.triple
            evidence.append(Evidence("triple", t.id, t.verbalize(), scored.score, label=f"T{number}"))
    for number, hit in enumerate(passages, start=1):
        p = hit.passage
        text = f"{p.title}: {p.text}" if p.title and not p.text.startswith(p.title) else p.text
        evidence.append(Evidence("passage", p.id, text, hit.score, label=f"P{number}",
                                 scores={"dense": hit.score, **hit.scores}))
    return evidence


def kg_answer(question: str, subgraph: Subgraph, *, max_answers: int) -> Answer:
    shown = list(subgraph.candidates[:max_answers])
    text = ", ".join(shown)
    if len(subgraph.candidates) > max_answers:
        text += f" (and {len(subgraph.candidates) - max_answers} more)"
    wanted = set(shown)
    citations = [
        Citation("triple", t.id, t.verbalize(), subgraph.confidence)
        for t in subgraph.candidate_triples
        if t.head in wanted or t.tail in wanted
    ][: max(max_answers, 5)]
    return Answer(
        question=question,
        text=text,
        refused=False,
        confidence=round(min(1.0, max(0.0, subgraph.confidence)), 4),
        citations=tuple(citations),
        method="kg",
    )


def supported_by(answer_text: str, evidence: Sequence[Evidence]) -> bool:
    """Does the answer occur in some evidence text (normalised, whole words)?"""
    needle = normalize_answer(answer_text)
    if not needle:
        return False
    return any(f" {needle} " in f" {normalize_answer(e.text)} " for e in evidence)


def reader_confidence(output: ReaderOutput, supported: bool) -> float:
    """Hand-set combination of the two signals that separated answerable from unanswerable in our probe
    (MODELS.md): the lowest token log-probability and whether the answer occurs in the evidence."""
    if output.refused or not output.text:
        return 0.0
    certainty = math.exp(max(output.min_logprob, -20.0))
    return round(min(1.0, 0.5 * certainty + (0.5 if supported else 0.0)), 4)


def reader_citations(output: ReaderOutput, evidence: Sequence[Evidence]) -> list[Citation]:
    by_label = {e.label: e for e in evidence}
    cited = [by_label[label] for label in output.cited_labels if label in by_label]
    if not cited:
        # The model did not cite: point at the evidence that contains its answer, if any.
        cited = [e for e in evidence if supported_by(output.text, [e])][:3]
    return [Citation(e.aspect, e.source_id, e.text, round(float(e.score), 4)) for e in cited]


def refusal(question: str, evidence: Sequence[Evidence], *, method: str, confidence: float = 0.0) -> Answer:
    closest = [Citation(e.aspect, e.source_id, e.text, round(float(e.score), 4)) for e in evidence[:3]]
    return Answer(
        question=question, text="", refused=True, confidence=round(confidence, 4), citations=tuple(closest), method=method
    )
