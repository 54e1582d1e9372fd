"""Entity linking from free text: exact and normalised n-gram matches, fuzzy matches for typos, and, when
neither finds a strong link, embedding matches of the question's n-grams against entity names.

Ambiguity is kept: every entity whose name matches a span is returned, ranked, and the KG retriever decides
jointly with relation evidence which one the question is about.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kg.graph import KnowledgeGraph
from kg.text import normalize_name, tokenize_with_spans
from kg.types import LinkedEntity

if TYPE_CHECKING:
    from indexes.embedder import Embedder

# Single words that are never the topic of a question on their own (they are the question's frame).
FRAME_WORDS = frozenset(
    """a an the of in on at to for by with from and or is are was were be been being do does did done what which
    who whom whose when where why how that this these those it its as about into than then there their they he she
    his her him me my we our you your i film films movie movies star stars starred starring act acted acts actor
    actors appear appears appeared direct directed directs director directors write wrote written writer writers
    release released genre genres language languages year years type types kind same also share shared person people
    describe described words word topic topics can could would tell list name names many much often""".split()
)


FUZZY_PREFIX = 3


@dataclass(frozen=True)
class LinkerConfig:
    max_ngram: int = 10
    max_candidates: int = 8
    fuzzy: bool = True
    fuzzy_cutoff: float = 88.0
    # Up to this many distinct names, a fuzzy match scans them all (MetaQA: 43k names, a few ms per span). Past
    # it, a span is compared only with the names sharing a word prefix with it (`FUZZY_PREFIX` letters; the
    # rarest prefixes first, at most `fuzzy_block_cap` names), so a query never scans a multi-million-triple KG's whole name list; a typo inside the first letters of every
    # word of a name is then missed.
    fuzzy_full_scan: int = 50_000
    fuzzy_block_cap: int = 5_000
    # Embedding match over entity names (vectors computed at build time): tried only when exact and fuzzy
    # matching found no link scoring `embedding_below` or more, so a well-linked question pays nothing.
    embedding: bool = True
    embedding_below: float = 0.6
    # Cosine similarity of an n-gram to an entity name from which it is a candidate (MiniLM: unrelated short
    # strings sit below ~0.5, a name with a typo or reordered words above ~0.8).
    embedding_min_similarity: float = 0.75
    embedding_max_ngram: int = 4
    embedding_per_span: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.embedding_min_similarity <= 1.0:
            raise ValueError(f"embedding_min_similarity must be in (0, 1], got {self.embedding_min_similarity}")
        if self.embedding_per_span <= 0 or self.embedding_max_ngram <= 0:
            raise ValueError("embedding_per_span and embedding_max_ngram must be greater than 0")


class EntityLinker:
    def __init__(
        self,
        graph: KnowledgeGraph,
        config: LinkerConfig | None = None,
        *,
        entity_vectors: np.ndarray | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.graph = graph
        self.config = config or LinkerConfig()
        if entity_vectors is not None and entity_vectors.shape[0] != len(graph.entities):
            raise ValueError(
                f"entity_vectors has {entity_vectors.shape[0]} rows but the graph has {len(graph.entities)} entities"
            )
        dimension = getattr(embedder, "dimension", None) if entity_vectors is not None else None
        if entity_vectors is not None and dimension is not None and entity_vectors.shape[1] != dimension:
            raise ValueError(f"entity_vectors are {entity_vectors.shape[1]}-d but the embedder gives {dimension}-d vectors")
        # Both are needed for embedding matches; without them (a very large KG built without name vectors)
        # linking is exact + fuzzy only.
        self.entity_vectors = entity_vectors
        self.embedder = embedder
        self._by_name: dict[str, list[int]] = defaultdict(list)
        for entity_id, name in enumerate(graph.entities):
            key = normalize_name(name)
            if key:
                self._by_name[key].append(entity_id)
        self._fuzzy_keys: list[str] | None = None
        self._fuzzy_blocks: dict[str, list[int]] | None = None
        self._fuzzy_lock = threading.Lock()

    def link(self, question: str) -> list[LinkedEntity]:
        tokens = tokenize_with_spans(question)
        spans = self._exact_spans(question, tokens)
        if self.config.fuzzy and not any(len(s[3].split()) > 1 for s in spans):
            spans += self._fuzzy_spans(question, tokens, taken=spans)
        if self._can_embed() and max((s[2] for s in spans), default=0.0) < self.config.embedding_below:
            spans += self._embedding_spans(tokens)
        chosen = self._resolve_overlaps(spans)
        linked: dict[str, LinkedEntity] = {}
        for start, end, score, _key, method, entity_ids, *per_entity in chosen:
            mention = question[start:end]
            for entity_id in entity_ids:
                if per_entity:
                    score = per_entity[0][entity_id]
                name = self.graph.entities[entity_id]
                bonus = 0.05 if name == mention else 0.0
                candidate = LinkedEntity(name=name, mention=mention, score=min(1.0, score + bonus), method=method)
                if name not in linked or linked[name].score < candidate.score:
                    linked[name] = candidate
        ranked = sorted(linked.values(), key=lambda e: (-e.score, -self.graph.degree(self.graph.entity_ids[e.name])))
        return ranked[: self.config.max_candidates]

    @staticmethod
    def _span_score(key: str) -> float:
        words = key.split()
        if len(words) == 1 and (key in FRAME_WORDS or len(key) <= 1):
            return 0.05
        # Longer names are less likely to match by accident.
        return min(0.95, 0.55 + 0.1 * len(words) + 0.01 * len(key))

    def _exact_spans(self, question: str, tokens: list[tuple[str, int, int]]) -> list[tuple]:
        spans = []
        for n in range(min(self.config.max_ngram, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                key = " ".join(t[0] for t in tokens[i : i + n])
                entity_ids = self._by_name.get(key)
                if entity_ids:
                    start, end = tokens[i][1], tokens[i + n - 1][2]
                    spans.append((start, end, self._span_score(key), key, "exact", list(entity_ids)))
        return spans

    def warm_up(self) -> None:
        """Build the fuzzy-match tables (name list; word-prefix blocks for a large KG) once, not per query."""
        if self._fuzzy_keys is not None:
            return
        with self._fuzzy_lock:
            if self._fuzzy_keys is not None:
                return
            keys = list(self._by_name)
            if len(keys) > self.config.fuzzy_full_scan:
                blocks: dict[str, list[int]] = defaultdict(list)
                for number, key in enumerate(keys):
                    for prefix in {word[:FUZZY_PREFIX] for word in key.split()}:
                        blocks[prefix].append(number)
                self._fuzzy_blocks = dict(blocks)
            self._fuzzy_keys = keys

    def _blocked_keys(self, words: list[str]) -> list[str]:
        """Names sharing a word prefix with the span; a prefix shared by too many names ("the") is skipped."""
        assert self._fuzzy_blocks is not None and self._fuzzy_keys is not None
        blocks = sorted((self._fuzzy_blocks.get(w[:FUZZY_PREFIX], []) for w in set(words)), key=len)
        numbers: set[int] = set()
        for block in blocks:
            if numbers and len(numbers) + len(block) > self.config.fuzzy_block_cap:
                break
            numbers.update(block[: self.config.fuzzy_block_cap])
        return [self._fuzzy_keys[n] for n in sorted(numbers)]

    def _fuzzy_spans(self, question: str, tokens: list[tuple[str, int, int]], taken: list[tuple]) -> list[tuple]:
        from rapidfuzz import fuzz, process

        self.warm_up()
        assert self._fuzzy_keys is not None
        spans = []
        for n in range(min(6, len(tokens)), 1, -1):
            for i in range(len(tokens) - n + 1):
                words = [t[0] for t in tokens[i : i + n]]
                if words[0] in FRAME_WORDS or words[-1] in FRAME_WORDS:
                    continue
                key = " ".join(words)
                choices = self._fuzzy_keys if self._fuzzy_blocks is None else self._blocked_keys(words)
                match = process.extractOne(key, choices, scorer=fuzz.ratio, score_cutoff=self.config.fuzzy_cutoff)
                if match is not None:
                    matched_key, similarity, _ = match
                    score = self._span_score(matched_key) * similarity / 100.0 * 0.9
                    start, end = tokens[i][1], tokens[i + n - 1][2]
                    spans.append((start, end, score, matched_key, "fuzzy", list(self._by_name[matched_key])))
        return spans

    def _can_embed(self) -> bool:
        return self.config.embedding and self.entity_vectors is not None and self.embedder is not None

    def _embedding_spans(self, tokens: list[tuple[str, int, int]]) -> list[tuple]:
        """Spans whose embedding is close to entity names' (one encode call for all n-grams, one matrix product).

        Each span keeps its `embedding_per_span` nearest names, so ambiguity survives to the retriever.
        """
        assert self.entity_vectors is not None and self.embedder is not None
        grams: list[tuple[int, int, str]] = []
        for n in range(min(self.config.embedding_max_ngram, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                words = [t[0] for t in tokens[i : i + n]]
                if words[0] in FRAME_WORDS or words[-1] in FRAME_WORDS or len(" ".join(words)) < 3:
                    continue
                grams.append((tokens[i][1], tokens[i + n - 1][2], " ".join(words)))
        if not grams:
            return []
        queries = self.embedder.encode([g[2] for g in grams])
        similarities = queries @ self.entity_vectors.T
        k = min(self.config.embedding_per_span, similarities.shape[1])
        top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        spans = []
        for (start, end, key), row, best in zip(grams, similarities, top):
            # Below exact and fuzzy matches of the same length: a near name is weaker evidence than the name.
            scores = {
                int(e): self._span_score(key) * float(row[e]) * 0.85
                for e in best
                if row[e] >= self.config.embedding_min_similarity
            }
            if scores:
                # One span per n-gram carrying all its near names (and each one's own score): overlap
                # resolution keeps or drops the span as a whole, so the ambiguity survives.
                spans.append((start, end, max(scores.values()), key, "embedding", list(scores), scores))
        return spans

    @staticmethod
    def _resolve_overlaps(spans: list[tuple]) -> list[tuple]:
        """Keep the best spans; a span inside a better-scoring one is dropped (Stephen Rea, not Rea)."""
        chosen: list[tuple] = []
        for span in sorted(spans, key=lambda s: (-s[2], -(s[1] - s[0]))):
            if all(span[1] <= c[0] or span[0] >= c[1] for c in chosen):
                chosen.append(span)
        return chosen
