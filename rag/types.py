"""Typed values that flow through the pipeline. No torch import here: these are cheap and serialisable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# One typed evidence stream: passages, verbalised triples, linked entities and relation paths.
Aspect = Literal["passage", "triple", "entity", "relation"]


@dataclass(frozen=True)
class Passage:
    """A chunk of a document. `parent_id` is the document's id when the builder split it."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    parent_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Passage.id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"Passage {self.id!r} has empty text")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Passage:
        return cls(
            id=data["id"],
            text=data["text"],
            title=data.get("title", "") or "",
            source=data.get("source", "") or "",
            parent_id=data.get("parent_id", "") or "",
            metadata=data.get("metadata") or {},
        )


@dataclass(frozen=True)
class ScoredPassage:
    passage: Passage
    score: float
    # Scores from later stages keyed by stage ("rerank", "gate"); `score` stays the dense cosine.
    scores: dict[str, float] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence shown to the reader: a passage or a verbalised triple, with its scores."""

    aspect: Aspect
    source_id: str
    text: str
    score: float
    # The short handle the reader cites, e.g. "P1" or "T3".
    label: str = ""
    # Every score this evidence collected ("dense", "rerank", "gate", ...); `score` is the primary one.
    scores: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    # A passage's document title ("" for triples and untitled passages): a question naming it is about it.
    title: str = ""


@dataclass(frozen=True)
class Citation:
    kind: Aspect
    id: str
    text: str
    score: float


@dataclass(frozen=True)
class Conflict:
    """Two pieces of evidence that disagree about the answer."""

    claim_a: str
    source_a: str
    claim_b: str
    source_b: str
    note: str = ""


@dataclass(frozen=True)
class Answer:
    """What `QAPipeline.ask` returns and `rag ask --json` prints."""

    question: str
    text: str
    refused: bool
    confidence: float
    citations: tuple[Citation, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    # How the answer was reached ("kg", "reader", "refusal") and per-stage timings; for people and eval.
    method: str = ""
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    # The signals a reader answer's confidence was computed from (rag.calibration.SIGNALS); for calibration.
    signals: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Answer.confidence must be in [0, 1], got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["citations"] = [asdict(c) for c in self.citations]
        data["conflicts"] = [asdict(c) for c in self.conflicts]
        return data
