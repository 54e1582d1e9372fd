"""Entity linking from free text: exact and normalised n-gram matches, then fuzzy matches for typos.

Ambiguity is kept: every entity whose name matches a span is returned, ranked, and the KG retriever decides
jointly with relation evidence which one the question is about.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from kg.graph import KnowledgeGraph
from kg.text import normalize_name, tokenize_with_spans
from kg.types import LinkedEntity

# Single words that are never the topic of a question on their own (they are the question's frame).
FRAME_WORDS = frozenset(
    """a an the of in on at to for by with from and or is are was were be been being do does did done what which
    who whom whose when where why how that this these those it its as about into than then there their they he she
    his her him me my we our you your i film films movie movies star stars starred starring act acted acts actor
    actors appear appears appeared direct directed directs director directors write wrote written writer writers
    release released genre genres language languages year years type types kind same also share shared person people
    describe described words word topic topics can could would tell list name names many much often""".split()
)


@dataclass(frozen=True)
class LinkerConfig:
    max_ngram: int = 10
    max_candidates: int = 8
    fuzzy: bool = True
    fuzzy_cutoff: float = 88.0


class EntityLinker:
    def __init__(self, graph: KnowledgeGraph, config: LinkerConfig | None = None) -> None:
        self.graph = graph
        self.config = config or LinkerConfig()
        self._by_name: dict[str, list[int]] = defaultdict(list)
        for entity_id, name in enumerate(graph.entities):
            key = normalize_name(name)
            if key:
                self._by_name[key].append(entity_id)
        self._fuzzy_keys: list[str] | None = None

    def link(self, question: str) -> list[LinkedEntity]:
        tokens = tokenize_with_spans(question)
        spans = self._exact_spans(question, tokens)
        if self.config.fuzzy and not any(len(s[3].split()) > 1 for s in spans):
            spans += self._fuzzy_spans(question, tokens, taken=spans)
        chosen = self._resolve_overlaps(spans)
        linked: dict[str, LinkedEntity] = {}
        for start, end, score, _key, method, entity_ids in chosen:
            mention = question[start:end]
            for entity_id in entity_ids:
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

    def _fuzzy_spans(self, question: str, tokens: list[tuple[str, int, int]], taken: list[tuple]) -> list[tuple]:
        from rapidfuzz import fuzz, process

        if self._fuzzy_keys is None:
            self._fuzzy_keys = list(self._by_name)
        spans = []
        for n in range(min(6, len(tokens)), 1, -1):
            for i in range(len(tokens) - n + 1):
                words = [t[0] for t in tokens[i : i + n]]
                if words[0] in FRAME_WORDS or words[-1] in FRAME_WORDS:
                    continue
                key = " ".join(words)
                match = process.extractOne(key, self._fuzzy_keys, scorer=fuzz.ratio, score_cutoff=self.config.fuzzy_cutoff)
                if match is not None:
                    matched_key, similarity, _ = match
                    score = self._span_score(matched_key) * similarity / 100.0 * 0.9
                    start, end = tokens[i][1], tokens[i + n - 1][2]
                    spans.append((start, end, score, matched_key, "fuzzy", list(self._by_name[matched_key])))
        return spans

    @staticmethod
    def _resolve_overlaps(spans: list[tuple]) -> list[tuple]:
        """Keep the best spans; a span inside a better-scoring one is dropped (Stephen Rea, not Rea)."""
        chosen: list[tuple] = []
        for span in sorted(spans, key=lambda s: (-s[2], -(s[1] - s[0]))):
            if all(span[1] <= c[0] or span[0] >= c[1] for c in chosen):
                chosen.append(span)
        return chosen
