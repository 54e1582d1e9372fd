"""Turning retrieved evidence and a reader's output into an `Answer`: evidence labels, KG set answers,
reader confidence and refusal, citations. Pure functions: no models here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from kg.types import Subgraph
from rag.metrics import FILLER_WORDS, normalize_answer
from rag.prompt import is_polar_question
from rag.reader import ReaderOutput
from rag.types import Answer, Citation, Evidence, ScoredPassage


def polar_answer(question: str, answer_text: str) -> bool:
    """A yes/no answer to a yes/no question: a judgment over the evidence, not a span copied from it, so
    "occurs in the evidence" cannot be its support test."""
    tokens = normalize_answer(answer_text).split()
    return bool(tokens) and tokens[0] in ("yes", "no") and is_polar_question(question)


# A name the question quotes, in straight or curly double quotes: 'Who wrote the paper "X"?' asks about X.
_WORD = re.compile(r"\w+")
_QUOTED = re.compile(r'"([^"]{4,200})"|\u201c([^\u201d]{4,200})\u201d')


def quoted_names(question: str) -> list[str]:
    return [(a or b).strip() for a, b in _QUOTED.findall(question) if (a or b).strip()]


def mentions(name: str, text: str, *, share: float = 0.8) -> bool:
    """Does `text` name `name`: at least `share` of its content words, as whole words ("minimum-entropy" is two)?"""
    words = [w for w in _WORD.findall(name.lower()) if w not in FILLER_WORDS] or _WORD.findall(name.lower())
    haystack = set(_WORD.findall(text.lower()))
    return bool(words) and sum(w in haystack for w in words) >= share * len(words)


def off_topic(question: str, evidence: Sequence[Evidence]) -> bool:
    """The question quotes a name that no evidence mentions: the evidence is about something else, so an
    answer found in it is not support (PUQA: a passage on packet switching "answered" who wrote a 2023 paper)."""
    return any(not any(mentions(name, e.text) for e in evidence) for name in quoted_names(question))


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
                                 scores={"dense": hit.score, **hit.scores}, title=p.title))
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


# The refusal threshold that goes with reader_confidence (when no calibrated model ships).
HAND_SET_THRESHOLD = 0.4


def reader_confidence(output: ReaderOutput, supported: bool) -> float:
    """Hand-set combination of the two signals that separated answerable from unanswerable in our probe
    (MODELS.md): the lowest token log-probability and whether the answer occurs in the evidence."""
    if output.refused or not output.text:
        return 0.0
    # No log-probs (a reader server that does not send them): certainty unknown, so only evidence decides.
    certainty = math.exp(max(output.min_logprob, -20.0)) if output.token_logprobs else 0.5
    return round(min(1.0, 0.5 * certainty + (0.5 if supported else 0.0)), 4)


def cite(evidence: Sequence[Evidence]) -> list[Citation]:
    return [Citation(e.aspect, e.source_id, e.text, round(float(e.score), 4)) for e in evidence]


def reader_citations(output: ReaderOutput, evidence: Sequence[Evidence], *, polar: bool = False) -> list[Citation]:
    by_label = {e.label: e for e in evidence}
    cited = [by_label[label] for label in output.cited_labels if label in by_label]
    if not cited:
        # The model did not cite: point at the evidence that contains its answer, if any; a yes/no answer
        # contains no span, so it cites the passages it was judged on.
        cited = [e for e in evidence if supported_by(output.text, [e]) or (polar and e.aspect == "passage")][:3]
    return cite(cited)


def refusal(question: str, evidence: Sequence[Evidence], *, method: str, confidence: float = 0.0) -> Answer:
    return Answer(
        question=question, text="", refused=True, confidence=round(confidence, 4), citations=tuple(cite(evidence[:3])),
        method=method,
    )
