"""Dense passage retrieval over the index's FAISS vectors."""

from __future__ import annotations

from indexes.embedder import Embedder
from indexes.vector import VectorIndex
from rag.errors import InputError
from rag.types import Passage, ScoredPassage


class DenseRetriever:
    def __init__(self, passages: list[Passage], vectors: VectorIndex, embedder: Embedder) -> None:
        self.passages = passages
        self.vectors = vectors
        self.embedder = embedder

    def retrieve(self, query: str, *, top_k: int) -> list[ScoredPassage]:
        if top_k <= 0:
            raise InputError(f"top_k must be greater than 0, got {top_k}")
        query_vector = self.embedder.encode([query])
        scores, rows = self.vectors.search(query_vector, top_k)
        return [
            ScoredPassage(self.passages[int(row)], float(score))
            for score, row in zip(scores[0], rows[0])
            if row >= 0
        ]
