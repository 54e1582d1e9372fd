"""Knowledge-graph data types. No torch, no networkx: these travel everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Triple:
    """One fact `head --relation--> tail`."""

    head: str
    relation: str
    tail: str

    def __post_init__(self) -> None:
        for name in ("head", "relation", "tail"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Triple.{name} must be a non-empty string, got {value!r}")

    @property
    def id(self) -> str:
        """A stable, human-readable id, used in citations."""
        return f"{self.head}|{self.relation}|{self.tail}"

    def verbalize(self) -> str:
        return f"{self.head} {self.relation.replace('_', ' ')} {self.tail}"


@dataclass(frozen=True)
class ScoredTriple:
    triple: Triple
    score: float


@dataclass(frozen=True)
class LinkedEntity:
    """A KG entity that a span of the question was linked to."""

    name: str
    mention: str
    score: float
    method: str  # "exact" | "fuzzy" | "embedding"


@dataclass(frozen=True)
class RelationPath:
    """A relation taken from a linked entity; `inverse` means the entity is the tail of the triples."""

    relation: str
    inverse: bool
    score: float

    def describe(self) -> str:
        return f"{'~' if self.inverse else ''}{self.relation}"


@dataclass(frozen=True)
class PathAnswer:
    """One relation path from a linked entity, the answers it reaches and the triples that reach them."""

    entity: str
    path: str
    answers: tuple[str, ...]
    triples: tuple[Triple, ...]
    # Question-to-path similarity (the retriever's match score) and the path's share of the softmax.
    similarity: float
    probability: float


@dataclass(frozen=True)
class Subgraph:
    """What the KG retriever found for one question."""

    entities: tuple[LinkedEntity, ...] = ()
    triples: tuple[ScoredTriple, ...] = ()
    # Candidate answers reached over the best relation path, best first, with their supporting triples.
    candidates: tuple[str, ...] = ()
    candidate_triples: tuple[Triple, ...] = ()
    path: RelationPath | None = None
    # How sure the retriever is that `candidates` answer the question (relation match x link score).
    confidence: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    # When the question matches several paths almost equally well: the best path first, then its close rivals
    # with different answers (a reader may choose among them). Empty when the best path is clear.
    alternatives: tuple[PathAnswer, ...] = ()
