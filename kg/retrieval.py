"""KG subgraph retrieval: link the question's entities, score relation paths against the question, follow the
best one to candidate answers, and return a bounded, scored subgraph for the reader.

Relation paths are scored two ways and the better is kept:
- against *exemplars*: questions (entity masked) labelled with the relation path that answers them, shipped
  in `kg/resources/relation_paths.jsonl` (learned from the dev sets; see `python -m kg.exemplars`);
- against the relation names themselves, so any user KG gets a sensible 1-hop retriever with no exemplars.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path as FsPath
from typing import TYPE_CHECKING

import numpy as np

from kg.algorithms import ppr_subgraph, shortest_paths_between
from kg.graph import KnowledgeGraph
from kg.linking import EntityLinker, LinkerConfig
from kg.paths import Path, answer_entities, enumerate_paths, follow, path_to_text
from kg.types import LinkedEntity, PathAnswer, RelationPath, ScoredTriple, Subgraph, Triple
from rag.errors import InputError

if TYPE_CHECKING:
    from indexes.embedder import Embedder

MASK = "E"
EXEMPLAR_VOTES = 3
# Path similarity below MATCH_FLOOR says nothing; at MATCH_FULL and above the question matches the path fully.
MATCH_FLOOR = 0.35
MATCH_FULL = 0.85
# Lexical step evidence (see `LexicalSteps`): a word "speaks for" a relation at this strength or more; a path's
# lexical score is added to its embedding similarity with this weight; a path no exemplar carries starts here.
LEX_STRONG = 0.3
LEARNED_MIN = 0.4
LEX_REPEAT_PENALTY = 0.05
LEX_WEIGHT = 0.5
LEX_UNSEEN_SIMILARITY = 0.4
STOP_WORDS = frozenset(
    "a an the of in on at to for by with from and or is are was were be been do does did what which who whom whose "
    "when where why how that this these those it its as about 's s name named ? , .".split()
)


def relation_words(relation: str) -> set[str]:
    return {w for w in relation.lower().replace("/", "_").replace(".", "_").split("_") if w}


def _same_word(word: str, name_word: str) -> bool:
    # "directed" ~ "directed_by", "nation" ~ "nationality": a shared 5-letter prefix is the same word here.
    return word == name_word or (len(word) >= 5 and len(name_word) >= 5 and word[:5] == name_word[:5])


class LexicalSteps:
    """Word -> relation evidence, so paths no exemplar carries can still be composed step by step.

    Exemplars only cover the relation *combinations* seen in the dev questions (PathQuestion's 3-hop sets
    combine ~100 relations, so most test paths are new) and their labels prefer shortcuts (a 3-hop "gender of
    X's artist's ..." is labelled 1-hop when it reaches the same answer). Single words are a sturdier unit: a
    word speaks for a relation if it is in the relation's name ("subject_of", "place of death") or if the
    exemplar questions containing it mostly carry that relation ("darling" -> spouse, "mom" -> parents).
    """

    def __init__(self, relations: list[str], exemplars: list[tuple[str, tuple[str, ...]]]) -> None:
        self.names = {r: relation_words(r) for r in relations}
        word_count: dict[str, int] = defaultdict(int)
        pair_count: dict[tuple[str, str], int] = defaultdict(int)
        self.learned: dict[tuple[str, str], float] = {}
        for question, path_relations in dict(exemplars).items():
            # Relations a word names literally are explained; the other words share the credit for the rest
            # (a 3-hop question's words are not all evidence for all 3 relations).
            words = set(self.content_words(question))
            named = {(w, r) for w in words for r in set(path_relations) if self.literal(w, r)}
            rest_words = words - {w for w, _ in named}
            rest_relations = set(path_relations) - {r for _, r in named}
            for word in rest_words:
                word_count[word] += 1
                for relation in rest_relations:
                    pair_count[(word, relation)] += 1 / len(rest_relations)
        # ~P(relation in path | word in question), trusted from two questions on and only where one relation
        # dominates: frame words ("films", "name") spread over many relations and must not count as evidence.
        self.learned = {
            pair: n / word_count[pair[0]]
            for pair, n in pair_count.items()
            if word_count[pair[0]] >= 2 and n / word_count[pair[0]] >= LEARNED_MIN
        }

    @staticmethod
    def content_words(question: str) -> list[str]:
        words = question.lower().replace("'s", " ").replace("_", " ").split()
        return [w.strip("?,.!") for w in words if w.strip("?,.!") and w.strip("?,.!") not in STOP_WORDS and w != MASK.lower()]

    def literal(self, word: str, relation: str) -> bool:
        return any(_same_word(word, n) for n in self.names.get(relation, ()))

    def evidence(self, word: str, relation: str) -> float:
        return 1.0 if self.literal(word, relation) else self.learned.get((word, relation), 0.0)

    def score(self, words: list[str], path: Path) -> float:
        """~1 when each step has its own strong word and no word speaking for a relation is left over.

        Words are used once: "the wife of X's darling" is two spouse steps, "X's wife" one.
        """
        unused = list(words)
        total = 0.0
        for relation, _inverse in path:
            best = max(unused, key=lambda w: self.evidence(w, relation), default=None)
            if best is None:
                continue
            total += self.evidence(best, relation)
            unused.remove(best)
            # A step named by several words ("place of death") uses them all, one question word per name word.
            for name_word in self.names.get(relation, set()) - {best}:
                match = next((w for w in unused if _same_word(w, name_word)), None)
                if match is not None and not _same_word(best, name_word):
                    unused.remove(match)
        # Words that speak for some relation but no step of this path: the path is too short (or wrong).
        leftover = sum(max((self.evidence(w, r) for r in self.names), default=0.0) for w in unused)
        return (total - leftover) / max(len(path), 1)


@dataclass(frozen=True)
class KGRetrieverConfig:
    max_triples: int = 50
    max_hops: int = 3
    max_entities: int = 3
    max_candidates: int = 30
    # After the best path's triples, this many next-best paths that reach answers add up to this many triples
    # each (answer-naming triples first), before the budget is filled with first-hop context.
    alternative_paths: int = 4
    triples_per_alternative: int = 6
    # Questions naming 2+ entities ("which film did X and Y both act in"): add the shortest paths (at most
    # `max_hops` edges) joining the linked entities whose link score reaches `connect_min_link`, right after
    # the best path's triples (kg.algorithms.shortest_paths_between).
    # Rival paths within `choice_margin` of the best path's similarity that reach other answers are kept in
    # `Subgraph.alternatives` (at most `max_choices` paths in all), for the reader to choose among.
    choice_margin: float = 0.05
    max_choices: int = 4
    connect_entities: bool = False
    connect_min_link: float = 0.6
    max_connecting_paths: int = 10
    # Fill what is left of the budget with the linked entities' Personalized-PageRank neighbourhood
    # (kg.algorithms.ppr_subgraph) instead of the next-best paths' first-hop triples.
    ppr_context: bool = False
    # Softmax temperature over path similarities: cosine gaps of a few hundredths are meaningful.
    temperature: float = 0.05
    use_exemplars: bool = True
    linker: LinkerConfig = field(default_factory=LinkerConfig)

    def __post_init__(self) -> None:
        if self.max_triples <= 0:
            raise InputError(f"max_triples must be greater than 0, got {self.max_triples}")
        if not 1 <= self.max_hops <= 3:
            raise InputError(f"max_hops must be 1, 2 or 3, got {self.max_hops}")


def mask_mention(question: str, mention: str) -> str:
    index = question.lower().find(mention.lower())
    if index < 0:
        return question
    return f"{question[:index]}{MASK}{question[index + len(mention):]}"


def relation_text(relation: str, inverse: bool) -> str:
    words = relation.replace("_", " ").replace("/", " ").replace(".", " ")
    return f"{words} {MASK}" if inverse else f"{MASK} {words}"


def load_exemplars() -> list[dict]:
    text = resources.files("kg").joinpath("resources/relation_paths.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _cache_dir() -> FsPath:
    return FsPath(os.environ.get("KGRAG_CACHE", "~/.cache/kgrag")).expanduser()


class KGRetriever:
    def __init__(
        self,
        graph: KnowledgeGraph,
        embedder: Embedder,
        config: KGRetrieverConfig | None = None,
        *,
        entity_vectors: np.ndarray | None = None,
    ) -> None:
        """`entity_vectors`: the index's build-time entity-name embeddings (`LoadedIndex.entity_vectors`), for
        embedding-based linking; None links by exact and fuzzy name matches only."""
        self.graph = graph
        self.embedder = embedder
        self.config = config or KGRetrieverConfig()
        self.linker = EntityLinker(graph, self.config.linker, entity_vectors=entity_vectors, embedder=embedder)
        self._relation_vectors: dict[tuple[str, bool], np.ndarray] = {}
        self._exemplar_paths: list[Path] = []
        self._exemplar_vectors = np.zeros((0, 1), dtype=np.float32)
        self._exemplar_steps: set[tuple[str, bool]] = set()
        self._lexical: LexicalSteps | None = None
        self._ready = False
        self._warm_lock = threading.Lock()

    def warm_up(self) -> None:
        if self._ready:
            return
        with self._warm_lock:
            if self._ready:
                return
            self.linker.warm_up()
            keys = [(r, inv) for r in self.graph.relations for inv in (False, True)]
            vectors = self.embedder.encode([relation_text(r, inv) for r, inv in keys])
            self._relation_vectors = dict(zip(keys, vectors))
            if self.config.use_exemplars:
                self._load_exemplars()
            self._ready = True

    def _load_exemplars(self) -> None:
        known = set(self.graph.relations)
        rows = [
            row for row in load_exemplars() if all(step[0] in known for step in row["path"]) and len(row["path"]) <= self.config.max_hops
        ]
        if not rows:
            return
        texts = [row["question"] for row in rows]
        digest = hashlib.sha256(("\n".join(texts) + self.embedder.name).encode()).hexdigest()[:16]
        cache = _cache_dir() / "exemplars" / f"{digest}.npy"
        vectors = None
        if cache.is_file():
            vectors = np.load(cache, allow_pickle=False)
            if vectors.shape[0] != len(rows):
                vectors = None
        if vectors is None:
            vectors = self.embedder.encode(texts)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors, allow_pickle=False)
            os.replace(tmp, cache)
        self._exemplar_paths = [tuple((s[0], bool(s[1])) for s in row["path"]) for row in rows]
        self._exemplar_steps = {step for path in self._exemplar_paths for step in path}
        self._exemplar_vectors = vectors
        self._lexical = LexicalSteps(
            list(self.graph.relations), [(row["question"], tuple(step[0] for step in row["path"])) for row in rows]
        )

    def retrieve(self, question: str) -> Subgraph:
        self.warm_up()
        links = self.linker.link(question)
        if not links:
            return Subgraph()
        # One softmax over every (entity, path) pair, with the link score as a prior: a weakly linked word
        # ("film") with a single relation must not beat a well-linked name whose best path is a clear match.
        logits: list[tuple[float, float, LinkedEntity, Path]] = []
        entities = links[: self.config.max_entities]
        masked = [mask_mention(question, entity.mention) for entity in entities]
        queries = self.embedder.encode(masked)
        for entity, masked_question, query in zip(entities, masked, queries):
            entity_id = self.graph.entity_ids[entity.name]
            scores = self._score_paths(query, entity_id)
            if self._lexical is not None:
                scores = self._add_lexical(masked_question, entity_id, scores)
            for path, similarity in scores.items():
                logit = similarity / self.config.temperature + math.log(max(entity.score, 1e-6))
                logits.append((logit, similarity, entity, path))
        if not logits:
            return Subgraph(entities=tuple(links))
        top = max(item[0] for item in logits)
        total = sum(math.exp(item[0] - top) for item in logits)
        scored = sorted(
            ((math.exp(logit - top) / total, similarity, entity, path) for logit, similarity, entity, path in logits),
            key=lambda item: (-item[0], -item[1]),
        )
        return self._build_subgraph(links, scored)

    def _score_paths(self, query: np.ndarray, entity_id: int) -> dict[Path, float]:
        first_steps = {(self.graph.relations[r], inv) for r, inv, _ in self.graph.relations_at(entity_id)}
        scores: dict[Path, float] = {}
        # Relation names only speak for relations no exemplar covers: name similarities run on another scale
        # than question-to-question similarities and would drown the exemplars' multi-hop paths.
        for step in first_steps - self._exemplar_steps:
            scores[(step,)] = float(self._relation_vectors[step] @ query)
        if len(self._exemplar_paths):
            # A path's score is the mean of its 3 most similar exemplars: one mislabelled neighbour cannot win.
            similarities = self._exemplar_vectors @ query
            per_path: dict[Path, list[float]] = defaultdict(list)
            for path, similarity in zip(self._exemplar_paths, similarities):
                if path[0] in first_steps:
                    per_path[path].append(float(similarity))
            for path, values in per_path.items():
                top = sorted(values, reverse=True)[:EXEMPLAR_VOTES]
                top += [top[-1] - 0.05] * (EXEMPLAR_VOTES - len(top))
                scores[path] = max(scores.get(path, -1.0), sum(top) / EXEMPLAR_VOTES)
        return scores

    def _add_lexical(self, masked_question: str, entity_id: int, scores: dict[Path, float]) -> dict[Path, float]:
        """Compose, from the question's words, paths no exemplar carries."""
        assert self._lexical is not None
        words = self._lexical.content_words(masked_question)
        if not words:
            return scores
        # Exemplar-scored paths keep their score (re-ranking them by words hurt MetaQA): the words only bring in
        # paths no exemplar carries, which win where the exemplars match poorly and each step is named.
        combined = dict(scores)
        for path in self._lexical_paths(words, entity_id):
            if path not in combined:
                # A relation repeated in a composed path is usually two synonyms for one step ("which words
                # describe" is has_tags once); real repeats (spouse of spouse) are what exemplars carry.
                repeats = len(path) - len({relation for relation, _ in path})
                lexical = self._lexical.score(words, path)
                combined[path] = LEX_UNSEEN_SIMILARITY + LEX_WEIGHT * lexical - LEX_REPEAT_PENALTY * repeats
        return combined

    def _lexical_paths(self, words: list[str], entity_id: int) -> list[Path]:
        """Paths from the entity whose every step some question word speaks for (a beam over the graph)."""
        assert self._lexical is not None
        lexical = self._lexical
        # Decided once per relation, not once per edge group the walk meets.
        allowed = {r for r in self.graph.relations if max(lexical.evidence(w, r) for w in words) >= LEX_STRONG}
        if not allowed:
            return []
        return enumerate_paths(
            self.graph,
            entity_id,
            self.config.max_hops,
            max_paths=10_000,
            keep_relation=allowed.__contains__,
            max_branches=50,
        )

    def _build_subgraph(self, links: list[LinkedEntity], scored: list) -> Subgraph:
        # The best-scoring path that reaches anything: a path that leads nowhere cannot be the question's.
        for position, (probability, similarity, entity, path) in enumerate(scored[:10]):
            entity_id = self.graph.entity_ids[entity.name]
            candidates = answer_entities(self.graph, entity_id, path)
            if candidates:
                break
        # Confidence is how well the question matches its path, not the softmax share: near-synonymous paths
        # (starred_actors vs. co-stars) split the share without making the best one less right. On the dev
        # sets, KG questions match their path at cosine >= 0.69, text questions that link a word by chance
        # at <= 0.27.
        match = min(1.0, max(0.0, (similarity - MATCH_FLOOR) / (MATCH_FULL - MATCH_FLOOR)))
        confidence = entity.score * match
        scored = [scored[position]] + scored[:position] + scored[position + 1 :]
        candidate_set = set(candidates[: self.config.max_candidates])
        result = follow(self.graph, entity_id, path)
        chosen_rows = self._rows_to(result.rows, candidate_set, entity_id, path)
        triples: list[ScoredTriple] = []
        seen: set[int] = set()
        for row in chosen_rows:
            if len(triples) >= self.config.max_triples:
                break
            triples.append(ScoredTriple(self.graph.triple(int(row)), confidence))
            seen.add(int(row))
        connecting = self._connecting_rows(links) if self.config.connect_entities else []
        for row in connecting:
            if len(triples) >= self.config.max_triples:
                break
            if row not in seen:
                triples.append(ScoredTriple(self.graph.triple(row), max(confidence, 0.5)))
                seen.add(row)
        # The next-best paths that reach answers, with those answers and the triples that reach them.
        rivals = []
        for score, rival_similarity, other_entity, other_path in scored[1:11]:
            if len(rivals) >= max(self.config.alternative_paths, self.config.max_choices - 1):
                break
            other_id = self.graph.entity_ids[other_entity.name]
            other_candidates = answer_entities(self.graph, other_id, other_path)[: self.config.max_candidates]
            if other_candidates:
                reaching = self._rows_to(follow(self.graph, other_id, other_path).rows, set(other_candidates), other_id, other_path)
                rivals.append((score, rival_similarity, other_entity, other_path, other_candidates, reaching))
        # Their triples come next, a few per path: when the best path is wrong, the right one is usually among
        # the next few, and the reader can still see it.
        for score, _, _, _, _, reaching in rivals[: self.config.alternative_paths]:
            for row in reaching[: self.config.triples_per_alternative]:
                if len(triples) >= self.config.max_triples:
                    break
                if int(row) not in seen:
                    triples.append(ScoredTriple(self.graph.triple(int(row)), score))
                    seen.add(int(row))
        choices = [self._path_answer(entity, path, candidates[: self.config.max_candidates], chosen_rows, similarity, probability)]
        for score, rival_similarity, other_entity, other_path, other_candidates, reaching in rivals:
            if (
                len(choices) < self.config.max_choices
                and rival_similarity >= similarity - self.config.choice_margin
                and set(other_candidates) != candidate_set
            ):
                choices.append(self._path_answer(other_entity, other_path, other_candidates, reaching, rival_similarity, score))
        if self.config.ppr_context:
            seeds = {self.graph.entity_ids[link.name]: link.score for link in links[: self.config.max_entities]}
            for row in ppr_subgraph(self.graph, seeds, max_triples=self.config.max_triples):
                if len(triples) >= self.config.max_triples:
                    break
                if row not in seen:
                    triples.append(ScoredTriple(self.graph.triple(row), confidence * 0.5))
                    seen.add(row)
        # Fill the rest of the budget with the next-best paths' first-hop triples (context for the reader).
        for score, _, other_entity, other_path in scored[1:]:
            if len(triples) >= self.config.max_triples:
                break
            other_id = self.graph.entity_ids[other_entity.name]
            relation_id = self.graph.relations.index(other_path[0][0])
            for row in self.graph.rows_between(other_id, relation_id, inverse=other_path[0][1])[:5]:
                if int(row) not in seen and len(triples) < self.config.max_triples:
                    triples.append(ScoredTriple(self.graph.triple(int(row)), score))
                    seen.add(int(row))
        return Subgraph(
            entities=tuple(links),
            triples=tuple(triples),
            candidates=tuple(self.graph.entities[e] for e in candidates[: self.config.max_candidates]),
            candidate_triples=tuple(t.triple for t in triples[: len(chosen_rows)]),
            path=RelationPath(relation=path_to_text(path), inverse=path[0][1], score=confidence),
            confidence=float(confidence) if candidates else 0.0,
            extra={
                "link_score": entity.score,
                "path_similarity": similarity,
                "path_probability": probability,
                "connecting_triples": float(len(connecting)),
            },
            alternatives=tuple(choices) if len(choices) > 1 and candidates else (),
        )

    def _path_answer(
        self, entity: LinkedEntity, path: Path, answers: list[int], rows: list[int], similarity: float, probability: float
    ) -> PathAnswer:
        return PathAnswer(
            entity=entity.name,
            path=path_to_text(path),
            answers=tuple(self.graph.entities[e] for e in answers),
            triples=tuple(self.graph.triple(int(r)) for r in rows[: self.config.max_candidates]),
            similarity=float(similarity),
            probability=float(probability),
        )

    def _connecting_rows(self, links: list[LinkedEntity]) -> list[int]:
        """Triple rows on shortest paths between the confidently linked entities (two or more), or none."""
        ids = list(
            dict.fromkeys(
                self.graph.entity_ids[link.name] for link in links if link.score >= self.config.connect_min_link
            )
        )[: self.config.max_entities]
        if len(ids) < 2:
            return []
        paths = shortest_paths_between(
            self.graph, ids, max_hops=self.config.max_hops, max_paths=self.config.max_connecting_paths
        )
        return list(dict.fromkeys(row for path in paths for row in path))

    def _rows_to(self, rows_per_step: list[np.ndarray], targets: set[int], start: int, path: Path) -> list[int]:
        """Triple rows on routes from `start` to `targets`, walking back from the last step."""
        if not rows_per_step:
            return []
        wanted = set(targets)
        kept_per_step: list[list[int]] = []
        for (_relation, inverse), rows in zip(reversed(path), reversed(rows_per_step)):
            kept = []
            previous = set()
            for row in rows:
                h, _r, t = self.graph.triples[row]
                source, target = (int(t), int(h)) if inverse else (int(h), int(t))
                if target in wanted:
                    kept.append(int(row))
                    previous.add(source)
            kept_per_step.append(kept)
            wanted = previous
        ordered = []
        for kept in reversed(kept_per_step):
            ordered.extend(kept)
        # The last hop names the answers: show those triples first.
        last = kept_per_step[0]
        return last + [r for r in ordered if r not in set(last)]


def triples_of(subgraph: Subgraph) -> list[Triple]:
    return [scored.triple for scored in subgraph.triples]
