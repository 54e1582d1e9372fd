"""Two-passage evidence chains for multi-hop questions (bridge and comparison questions).

A question such as "What language were books translated into during the era of Haymo of Faversham?" needs two
passages: one about Haymo, and one about the era it names. The second passage is often far from the question in
embedding space, so dense top-k misses it and fills the prompt with distractors instead; a small reader is
easily misled by those (docs/RESULTS.md: on held-out HotpotQA it does better with this chain of two than with
the dense top 5).

So, as multi-hop dense retrieval does, each of the best first-hop passages seeds a second-hop query (question +
that passage's text), and the pipeline shows the reader the passage nearest the question and the candidate
that scores best with it: both passages' similarity to the question, plus a bonus when one passage names the
other's title (Wikipedia's hyperlinks, in text form) and when the question names a passage's title (comparison
questions name both). A partner that nothing ties to the first passage is shown only when it is about as
close to the question; otherwise the nearest passage goes alone (a single-hop question). The weights were chosen
on HotpotQA's odd (tuning) lines, the partner rule on the odd lines of NQ, SQuAD 2.0, HotpotQA and MuSiQue. Pure
functions here; the retrieval calls live in `QAPipeline.select_chain`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.errors import InputError
from rag.metrics import normalize_answer
from rag.types import Passage, ScoredPassage

_PARENTHETICAL = re.compile(r"\s*\([^)]*\)\s*")


@dataclass(frozen=True)
class ChainConfig:
    pool: int = field(default=10, metadata={"help": "first-hop dense candidates"})
    seeds: int = field(default=3, metadata={"help": "best first-hop passages that each seed a second-hop query"})
    second_hop: int = field(default=5, metadata={"help": "candidates each second-hop query adds"})
    seed_chars: int = field(default=1000, metadata={"help": "characters of a seed passage added to the question"})
    link_bonus: float = 0.3  # one passage of the pair names the other's title
    title_bonus: float = 0.2  # for each passage of the pair whose title the question names
    # A partner that nothing ties to the first passage (no title link, the question does not name it) is shown only
    # when it is about as close to the question (at least this share of the first's similarity): a single-hop
    # question is answered by its nearest passage, and a small reader is misled by an unrelated second one.
    partner_share: float = 0.8

    def __post_init__(self) -> None:
        for name in ("pool", "seeds", "second_hop", "seed_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"chains.{name} must be greater than 0, got {value!r}")
        for name in ("link_bonus", "title_bonus"):
            if getattr(self, name) < 0:
                raise InputError(f"chains.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.partner_share <= 1.0:
            raise InputError(f"chains.partner_share must be in [0, 1], got {self.partner_share!r}")


def names_title(title: str, text: str) -> bool:
    """Does `text` name `title` (whole words, normalised; a disambiguation like "(film)" is not required)?"""
    name = normalize_answer(_PARENTHETICAL.sub(" ", title))
    return bool(name) and f" {name} " in f" {normalize_answer(text)} "


def linked(a: Passage, b: Passage) -> bool:
    """One passage names the other's title. A title inside the naming passage's own title ("Orrefors" in a
    passage titled "Orrefors Glass Pavilion") is part of a name, not a mention."""
    return ((names_title(b.title, a.text) and not names_title(b.title, a.title))
            or (names_title(a.title, b.text) and not names_title(a.title, b.title)))


def titles_named(question: str, candidates: Sequence[ScoredPassage]) -> list[bool]:
    """Which candidates' titles the question names, the longest name only: a question about the "Orrefors Glass
    Pavilion" does not name the village "Orrefors"."""
    named = [names_title(c.passage.title, question) for c in candidates]
    longer = {c.passage.title for c, yes in zip(candidates, named) if yes}

    def inside_a_longer_name(title: str) -> bool:
        return any(normalize_answer(other) != normalize_answer(title) and names_title(title, other) for other in longer)

    return [yes and not inside_a_longer_name(c.passage.title) for c, yes in zip(candidates, named)]


def second_hop_query(question: str, seed: Passage, chars: int) -> str:
    return f"{question} {seed.text[:chars]}"


def document_id(hit: ScoredPassage) -> str:
    """Chunks of one document are one source: a chain joins two documents."""
    return hit.passage.parent_id or hit.passage.id


def best_chain(question: str, candidates: Sequence[ScoredPassage], question_scores: Sequence[float],
              config: ChainConfig) -> list[ScoredPassage]:
    """The chain: the candidate nearest the question, then the candidate of another document that scores best
    with it (left out when nothing ties it to the first and it is below `partner_share` of the first's score); each
    with the pair's score under `scores["chain"]`. Fewer than two documents: the candidates as given.

    The chain always starts at the nearest candidate (a beam of one, as multi-hop dense retrieval starts from its
    best first hop): a free choice of both passages let a linked pair of near misses push out the one passage a
    single-hop question needed (answers of the embedded sample's NQ questions were lost that way)."""
    if len(candidates) != len(question_scores):
        raise InputError(f"{len(candidates)} candidates but {len(question_scores)} scores")
    if not candidates:
        return []
    named = titles_named(question, candidates)
    first = max(range(len(candidates)), key=lambda k: question_scores[k])
    best: tuple[float, int, float] | None = None
    for other in range(len(candidates)):
        if document_id(candidates[other]) == document_id(candidates[first]):
            continue
        # What ties the partner to the chain: a link between the two, or the question naming the partner.
        tie = config.link_bonus * linked(candidates[first].passage, candidates[other].passage)
        tie += config.title_bonus * named[other]
        score = question_scores[first] + question_scores[other] + tie + config.title_bonus * named[first]
        if best is None or score > best[0]:
            best = (score, other, tie)
    if best is None:
        return list(candidates)
    score, other, tie = best
    chain = (first, other)
    # Share 0 switches the rule off (always a pair), even for a partner whose similarity is negative.
    if tie == 0 and config.partner_share > 0 and question_scores[other] < config.partner_share * question_scores[first]:
        chain = (first,)
    return [ScoredPassage(candidates[k].passage, candidates[k].score,
                          {**candidates[k].scores, "chain": round(score, 4)})
            for k in chain]
