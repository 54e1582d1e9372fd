"""DPA-RAG preference data: which retrieved passages help OUR reader, measured with the reader itself.

For each question the dense retriever's top-k candidates are scored one at a time: the reader's mean
log-likelihood of the gold answer given that passage alone, minus the same given no evidence at all (one
forward pass each, `TransformersReader.score_options`; far cheaper than generating). A candidate that raises
the gold answer's likelihood is *aligned*, one that lowers it is *misleading* (the reader would have been
right without it), the rest are neutral. The same records give the knowledge-identification examples (pick
the useful passage among distractors) for training the reader later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rag.errors import InputError
from rag.metrics import normalize_answer
from rag.types import Evidence, ScoredPassage

ALIGNED, NEUTRAL, MISLEADING = 1, 0, -1


@dataclass(frozen=True)
class Candidate:
    id: str
    text: str
    dense: float  # cosine similarity from the dense retriever
    rank: int  # 0-based FAISS rank
    loglik: float  # reader's mean log-likelihood of the gold answer given this passage alone
    delta: float  # loglik minus the no-evidence log-likelihood
    contains: bool  # the passage contains a gold answer (normalised, whole words)
    label: int  # ALIGNED / NEUTRAL / MISLEADING
    aspect: str = "passage"  # "passage" or "triple" (then `dense` is the KG retriever's triple score)
    title: str = ""  # a passage's title; a triple's head entity
    supporting: bool = False  # an annotated supporting passage of the question (multi-hop data sets)


@dataclass(frozen=True)
class PreferenceRecord:
    qid: str
    question: str
    answers: tuple[str, ...]
    dataset: str
    loglik_none: float
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    # "reader": labels from the reader's likelihood of the gold answer (DPA-RAG); "gold": distant labels
    # (the passage contains a gold answer or is an annotated supporting passage), for when the reader is
    # too slow to run over every candidate (on this shared 2-core CPU: 30-70 s/question for 8 candidates);
    # "reader+gold": reader labels filtered by `agreed_labels` (made at training time, not stored).
    labeler: str = "reader"
    # The other aspects of the question as the gate sees them at answer time (`rag.gate.GateContext` fields:
    # linked entities, triple entities, KG path answers); empty without a KG.
    context: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passages(self) -> tuple[Candidate, ...]:
        """The passage candidates (what the reranker and the knowledge-identification task use)."""
        return tuple(c for c in self.candidates if c.aspect == "passage")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> PreferenceRecord:
        return cls(
            qid=data["qid"],
            question=data["question"],
            answers=tuple(data["answers"]),
            dataset=data.get("dataset", ""),
            loglik_none=float(data["loglik_none"]),
            candidates=tuple(Candidate(**c) for c in data["candidates"]),
            labeler=data.get("labeler", "reader"),
            context={k: list(v) for k, v in (data.get("context") or {}).items()},
        )


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    hay = f" {normalize_answer(text)} "
    return any(normalize_answer(a) and f" {normalize_answer(a)} " in hay for a in answers)


def passage_text(hit: ScoredPassage) -> str:
    """The text the reader sees for a passage (same as `answering.make_evidence`)."""
    p = hit.passage
    return f"{p.title}: {p.text}" if p.title and not p.text.startswith(p.title) else p.text


def label_for(delta: float, margin: float) -> int:
    if delta >= margin:
        return ALIGNED
    if delta <= -margin:
        return MISLEADING
    return NEUTRAL


def is_supporting(hit: ScoredPassage, gold: set[str]) -> bool:
    """The passage, or the document it was chunked from, is an annotated supporting passage."""
    return hit.passage.id in gold or (hit.passage.parent_id or "") in gold


def agreed_labels(record: PreferenceRecord) -> PreferenceRecord:
    """Reader labels kept only where the distant evidence agrees: aligned = the reader's likelihood of the gold
    answer rises with the passage AND the passage contains the answer or is annotated as supporting;
    misleading = it falls AND the passage is neither; everything else neutral.

    The likelihood alone is noisy with a small reader: for a yes/no question any passage about the topic raises
    "yes" (the no-evidence prompt makes the reader refuse), so every candidate came out aligned. Gold-labelled
    records are returned unchanged."""
    if record.labeler != "reader":
        return record

    def agreed(c: Candidate) -> Candidate:
        if c.aspect != "passage":
            return c
        supported = c.contains or c.supporting
        if c.label == ALIGNED and supported:
            return c
        if c.label == MISLEADING and not supported:
            return c
        return replace(c, label=NEUTRAL)

    return replace(record, candidates=tuple(agreed(c) for c in record.candidates), labeler="reader+gold")


def build_record(
    reader,
    qid: str,
    question: str,
    answers: Sequence[str],
    hits: Sequence[ScoredPassage],
    *,
    dataset: str = "",
    margin: float = 0.2,
    max_answers: int = 3,
    gold_ids: Sequence[str] = (),
) -> PreferenceRecord:
    """Score every candidate with `reader.score_options` (best of the first `max_answers` gold answers).
    `gold_ids` (annotated supporting passages) are recorded for `agreed_labels`, not used in the label."""
    gold = set(gold_ids)
    options = [a for a in answers if a.strip()][:max_answers]
    if not options:
        raise InputError(f"question {qid!r} has no gold answer to score")
    none = max(reader.score_options(question, [], options))
    candidates = []
    for rank, hit in enumerate(hits):
        text = passage_text(hit)
        evidence = [Evidence("passage", hit.passage.id, text, hit.score, label="P1")]
        loglik = max(reader.score_options(question, evidence, options))
        delta = loglik - none
        candidates.append(
            Candidate(hit.passage.id, text, round(hit.score, 5), rank, round(loglik, 5), round(delta, 5),
                      contains_answer(text, answers), label_for(delta, margin), title=hit.passage.title,
                      supporting=is_supporting(hit, gold))
        )
    return PreferenceRecord(qid, question, tuple(answers), dataset, round(none, 5), tuple(candidates))


def build_record_gold(
    qid: str,
    question: str,
    answers: Sequence[str],
    hits: Sequence[ScoredPassage],
    gold_ids: Sequence[str],
    *,
    dataset: str = "",
    subgraph=None,
) -> PreferenceRecord:
    """Distant labels without the reader: aligned = contains a gold answer or is a gold supporting passage
    (multi-hop bridge passages rarely contain the answer itself). With a KG `subgraph`, its triples are
    candidates too, aligned when on a gold path (`gold_path_triples`)."""
    gold = set(gold_ids)
    candidates = []
    for rank, hit in enumerate(hits):
        text = passage_text(hit)
        contains = contains_answer(text, answers)
        supporting = is_supporting(hit, gold)
        candidates.append(
            Candidate(hit.passage.id, text, round(hit.score, 5), rank, 0.0, 0.0, contains,
                      ALIGNED if contains or supporting else NEUTRAL, title=hit.passage.title,
                      supporting=supporting)
        )
    candidates.extend(triple_candidates(subgraph, answers))
    from rag.gate import GateContext

    context = {k: list(v) for k, v in asdict(GateContext.from_subgraph(subgraph)).items() if v}
    return PreferenceRecord(qid, question, tuple(answers), dataset, 0.0, tuple(candidates), labeler="gold",
                            context=context)


def gold_path_triples(subgraph, answers: Sequence[str], *, max_hops: int = 3) -> set[int]:
    """Indexes of the subgraph triples on a shortest path from a linked entity to a gold answer entity.

    Multi-hop questions need the bridge triples too (`film directed_by X`, then `film release_year 1990`), and
    they do not contain the answer; distances are counted over the subgraph's own triples, undirected. When no
    linked entity reaches an answer within `max_hops` (a longer path runs through shared values such as a
    year), the triples that name an answer are the only gold ones."""
    from collections import deque

    gold = {normalize_answer(a) for a in answers if normalize_answer(a)}
    triples = [st.triple for st in subgraph.triples]
    neighbours: dict[str, set[str]] = {}
    for t in triples:
        neighbours.setdefault(t.head, set()).add(t.tail)
        neighbours.setdefault(t.tail, set()).add(t.head)

    def distances(sources: set[str]) -> dict[str, int]:
        dist = {s: 0 for s in sources}
        queue = deque(sources)
        while queue:
            node = queue.popleft()
            for nxt in neighbours.get(node, ()):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        return dist

    answer_nodes = {n for n in neighbours if normalize_answer(n) in gold}
    touching = {k for k, t in enumerate(triples) if t.head in answer_nodes or t.tail in answer_nodes}
    linked = {e.name for e in subgraph.entities} & set(neighbours)
    from_answers = distances(answer_nodes)
    reach = [from_answers[n] for n in linked if from_answers.get(n, max_hops + 1) <= max_hops]
    if not reach:
        return touching
    best = min(reach)
    from_linked = distances({n for n in linked if from_answers.get(n) == best})
    on_path = set()
    for k, t in enumerate(triples):
        for a, b in ((t.head, t.tail), (t.tail, t.head)):
            if a in from_linked and b in from_answers and from_linked[a] + 1 + from_answers[b] == best:
                on_path.add(k)
    return on_path


def triple_candidates(subgraph, answers: Sequence[str], *, limit: int = 50) -> tuple[Candidate, ...]:
    """The subgraph's triples as gate candidates, labelled aligned when on a gold path (distant labels)."""
    if subgraph is None:
        return ()
    on_path = gold_path_triples(subgraph, answers)
    candidates = []
    for rank, scored in enumerate(subgraph.triples[:limit]):
        t = scored.triple
        text = t.verbalize()
        candidates.append(Candidate(t.id, text, round(float(scored.score), 5), rank, 0.0, 0.0,
                                    contains_answer(text, answers), ALIGNED if rank in on_path else NEUTRAL,
                                    aspect="triple", title=t.head))
    return tuple(candidates)


def read_records(path: str | Path) -> Iterator[PreferenceRecord]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"preference file does not exist: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield PreferenceRecord.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{path}:{number}: not a preference record ({exc})") from exc


def knowledge_identification(record: PreferenceRecord, *, max_distractors: int = 4) -> dict | None:
    """One reader-training example: the passages, which of them the reader needs, and the answer.

    Only questions with at least one aligned and one non-aligned candidate teach anything."""
    useful = [c for c in record.passages if c.label == ALIGNED]
    others = [c for c in record.passages if c.label != ALIGNED]
    if not useful or not others:
        return None
    # Misleading distractors first: they are the ones the reader must learn to ignore.
    others.sort(key=lambda c: (c.label != MISLEADING, c.rank))
    chosen = sorted(useful[:2] + others[:max_distractors], key=lambda c: c.rank)
    return {
        "id": record.qid,
        "question": record.question,
        "answers": list(record.answers),
        "passages": [{"id": c.id, "text": c.text} for c in chosen],
        "useful": [i for i, c in enumerate(chosen) if c.label == ALIGNED],
        "misleading": [i for i, c in enumerate(chosen) if c.label == MISLEADING],
    }
