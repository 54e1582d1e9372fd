"""Poisoned-context defense: check the reader's answer against a planted, coordinated group of passages.

Knowledge-poisoning attacks (PoisonedRAG, RGB counterfactual) plant several passages that all assert the
attacker's answer, written to match the question so they crowd the top of dense retrieval. The reader then
parrots them: five passages outvote the one true passage. Ideas from RobustRAG / TrustRAG / AstuteRAG, made
cheap enough for a CPU reader (each reader call costs seconds):

1. Group by claim, not by passage: after the normal read, the passages of a wider pool that assert the
   answer form its supporting group (string attribution, no model call).
2. Independence: a group of >= `min_group` passages with high mutual embedding similarity is *coordinated*
   (generated from one template) and counts as one uncorroborated source, not as a majority.
3. Isolate-then-aggregate: only for a coordinated group, read the evidence outside it alone (trusted KG
   triples + the best independent passages *about the question*), and if that says nothing, the reader's own
   memory (a closed-book read). Agreement corroborates the answer; a different claim wins over the coordinated
   group and both claims are reported as a `Conflict`; with no other support the pipeline refuses rather than
   repeat an uncorroborated coordinated claim. An isolated answer that no independent passage states is no
   source (the reader took it from the question), and memory agreeing with a yes/no or with an option the
   question names is no corroboration (it may be a guess). Real reports of one news story read alike too: when the
   other answer also rests on a coordinated group, the group behind the answer may be the true one, so neither
   side wins for the other being a group; they are weighed as in the contest (4).
4. Contest (no coordinated group): one planted passage is no group, yet a 0.5B reader follows it as readily as
   five. The passages about the question that do not state the answer, and are about the same thing as a passage
   that does (a contradiction, not another topic), are read apart; when they give another answer that only they
   state, the two claims are weighed: a KG triple, a coordinated group against an independent passage, the count
   of independent sources (near-duplicates count once), and on a tie the reader's memory; a tie that memory does
   not break is refused. Both claims are reported as a `Conflict`.
5. Yes/no answers: no passage states "yes" word for word, so the group behind one is the largest near-duplicate
   cluster of the pool (PoisonedRAG plants five "yes" passages for "do all private schools have uniforms").

Only `PoisonDefense`'s methods call models (and `decide_contest`, through the `recall` they hand it); the rest are
pure functions, so the decision logic is unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from rag.chains import names_title
from rag.errors import InputError
from rag.metrics import FILLER_WORDS, QUESTION_WORDS, normalize_answer
from rag.reader import ReaderOutput
from rag.types import Conflict, Evidence


@dataclass(frozen=True)
class DefenseConfig:
    # Planted passages crowd the top of retrieval, so the group is looked for in a wider pool than top_k.
    pool_size: int = field(default=10, metadata={"help": "dense passages examined for a coordinated group"})
    min_group: int = field(default=3, metadata={"help": "passages asserting one answer before coordination counts"})
    # Mean pairwise cosine (normalised embeddings) of the supporting group. PoisonedRAG's 5 passages per
    # question: 0.70-0.93 in our probe (nq, first 8 questions); different real passages on one topic: lower.
    coordination_similarity: float = 0.7
    max_independent: int = field(default=3, metadata={"help": "independent passages read apart from the group"})
    # The isolated read sees only passages about the question: shown the rest of the pool (other topics, often other
    # planted groups), a 0.5B reader answers from it anyway ("Jefferson County" for a question on Cicero, IL, or a
    # "No" read off an unrelated passage). PoisonedRAG probe (180 questions, the chain's pool): with both bars (and
    # `about`'s title rule) the true passage passes for 0.87 of the questions that have one, some other question's
    # passage for 5 of 180.
    topic_coverage: float = field(
        default=0.25, metadata={"help": "share of the question's topic words an independent passage must contain"})
    topic_min_score: float = field(
        default=0.4, metadata={"help": "similarity to the question an independent passage needs"})
    # The isolated reads only need a short answer: fewer generated tokens, fewer seconds.
    max_new_tokens: int = 12
    # One planted passage is no coordinated group, yet it wins the reader over as often as five do (PoisonedRAG with
    # one planted passage per question: docs/RESULTS.md). So an answer with no group behind it is contested too: the
    # passages about the question that do not state it are read apart, and a different answer that only they state
    # is weighed against it (rag.defense.decide_contest).
    contest: bool = True
    # A contradiction needs two passages about the same thing: a rival passage must be at least this similar to a
    # passage stating the answer. In a probe, PoisonedRAG's single planted passage and the true one: 0.41-0.92, most
    # >= 0.55; the other-topic passages of HotpotQA and NQ that gave another answer: mostly 0.2-0.53 (docs/RESULTS.md).
    contest_similarity: float = 0.55

    def __post_init__(self) -> None:
        if not isinstance(self.pool_size, int) or self.pool_size <= 0:
            raise InputError(f"defense pool_size must be greater than 0, got {self.pool_size!r}")
        if not isinstance(self.min_group, int) or self.min_group < 2:
            raise InputError(f"defense min_group must be at least 2, got {self.min_group!r}")
        if not 0.0 <= self.coordination_similarity <= 1.0:
            raise InputError(f"defense coordination_similarity must be in [0, 1], got {self.coordination_similarity!r}")
        if not isinstance(self.max_independent, int) or self.max_independent < 0:
            raise InputError(f"defense max_independent must be >= 0, got {self.max_independent!r}")
        if not 0.0 <= self.topic_coverage <= 1.0:
            raise InputError(f"defense topic_coverage must be in [0, 1], got {self.topic_coverage!r}")
        if not -1.0 <= self.contest_similarity <= 1.0:
            raise InputError(f"defense contest_similarity must be in [-1, 1], got {self.contest_similarity!r}")
        if not -1.0 <= self.topic_min_score <= 1.0:
            raise InputError(f"defense topic_min_score must be in [-1, 1], got {self.topic_min_score!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 256:
            raise InputError(f"defense max_new_tokens must be in [1, 256], got {self.max_new_tokens!r}")


Action = Literal["keep", "switch", "refuse"]


@dataclass(frozen=True)
class Verdict:
    """What the pipeline does with the reader's answer. `output`/`evidence` are the answer to use on a switch."""

    action: Action
    reason: str
    conflicts: tuple[Conflict, ...] = ()
    output: ReaderOutput | None = None
    evidence: tuple[Evidence, ...] = ()


class _Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class _Reader(Protocol):
    def read(
        self, question: str, evidence: Sequence[Evidence], *, instruction: str | None = None,
        max_new_tokens: int | None = None,
    ) -> ReaderOutput: ...


# ---- pure parts ----------------------------------------------------------------------------------------


def claim_tokens(answer: str) -> tuple[str, ...]:
    tokens = normalize_answer(answer).split()
    kept = tuple(t for t in tokens if t not in FILLER_WORDS)
    return kept or tuple(tokens)


def word_stem(token: str) -> str:
    """A word without a final plural or possessive "s": normalising drops the apostrophe, so "Brandon Tatum's
    campaign" reads "brandon tatums campaign", which must still state "Brandon Tatum"."""
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


def asserts(answer: str, text: str) -> bool:
    """Does `text` state `answer`? The whole answer as words, or (multi-word answers) all its content words; a
    plural or possessive "s" is no other word."""
    needle = normalize_answer(answer)
    if not needle:
        return False
    words = [word_stem(t) for t in normalize_answer(text).split()]
    if f" {' '.join(word_stem(t) for t in needle.split())} " in f" {' '.join(words)} ":
        return True
    tokens = claim_tokens(answer)
    vocabulary = set(words)
    return len(tokens) >= 1 and all(word_stem(t) in vocabulary for t in tokens)


def same_claim(a: str, b: str) -> bool:
    """Two short answers agree when one's content words contain the other's ("24" vs "24 episodes"; "Brandon
    Tatums" and "Brandon Tatum" too)."""
    ta, tb = ({word_stem(t) for t in claim_tokens(x)} for x in (a, b))
    if not ta or not tb:
        return False
    return ta <= tb or tb <= ta


def mean_pairwise_similarity(vectors: np.ndarray) -> float:
    """Mean cosine over distinct pairs of normalised row vectors (0 for fewer than two)."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def largest_cluster(vectors: np.ndarray, threshold: float) -> list[int]:
    """Rows of the largest neighbourhood: some row and every row at cosine >= `threshold` from it (normalised
    rows; ties go to the earlier row)."""
    if len(vectors) == 0:
        return []
    near = (vectors @ vectors.T) >= threshold
    best = int(np.argmax(near.sum(axis=1)))
    return [int(i) for i in np.flatnonzero(near[best])]


def count_sources(vectors: np.ndarray, threshold: float) -> int:
    """How many independent sources the rows are: near-duplicates (cosine >= `threshold` from a common row, as in
    `largest_cluster`) count once."""
    left = list(range(len(vectors)))
    count = 0
    while left:
        cluster = set(largest_cluster(vectors[left], threshold))
        left = [row for k, row in enumerate(left) if k not in cluster]
        count += 1
    return count


def _words(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def topic_terms(question: str, passages: Sequence[Evidence], *, generic_share: float = 0.5,
                min_generic: int = 3) -> list[str]:
    """The question's words that name what it is about: its words minus question words (`QUESTION_WORDS`) and minus
    words common among `passages` (the pool outside the planted group). In "what county is cicero il" every county
    passage of the pool has "county"; few have "cicero". A word is common in more than `generic_share` of them and
    in at least `min_generic`."""
    terms = [t for t in dict.fromkeys(normalize_answer(question).split()) if t not in QUESTION_WORDS]
    bags = [_words(e.text) for e in passages]

    def common(term: str) -> bool:
        count = sum(term in bag for bag in bags)
        return count > generic_share * len(bags) and count >= min_generic

    return [t for t in terms if not common(t)]


def about(passages: Sequence[Evidence], question: str, terms: Sequence[str], *, coverage: float,
          min_score: float) -> list[Evidence]:
    """The passages about the question: those similar enough to it (`min_score`) that name `coverage` of its topic
    `terms` (with no topic terms left, similarity alone decides), and those whose title the question names: a long
    passage titled "Hacksaw Ridge" can score 0.27 against "who plays the main character in hacksaw ridge"."""
    def names_enough(e: Evidence) -> bool:
        words = _words(e.text)
        return not terms or sum(t in words for t in terms) >= coverage * len(terms)

    return [e for e in passages
            if (e.title and names_title(e.title, question)) or (e.score >= min_score and names_enough(e))]


def sources(items: Sequence[Evidence]) -> str:
    return ",".join(e.source_id for e in items)


def is_answer(output: ReaderOutput | None) -> bool:
    return output is not None and not output.refused and bool(output.text)


def decide(
    answer: str,
    group: Sequence[Evidence],
    coordination: float,
    *,
    trusted: Sequence[Evidence],
    independent: ReaderOutput | None,
    independent_evidence: Sequence[Evidence],
    memory: ReaderOutput | None,
    guess: bool = False,
) -> Verdict:
    """The aggregation rule once a coordinated group asserting `answer` was found (pure; see module doc).
    `guess`: the answer is one the question offers (yes/no, or an option it names), so the reader's memory
    agreeing with it may be a coin toss and does not corroborate it."""
    group_note = f"{len(group)} near-duplicate passages (mean similarity {coordination:.2f}) assert it"
    if any(asserts(answer, t.text) for t in trusted):
        return Verdict("keep", f"a trusted KG triple states the answer; {group_note}")
    if is_answer(independent):
        assert independent is not None
        if same_claim(answer, independent.text):
            return Verdict("keep", f"independent evidence agrees; {group_note}")
        conflict = Conflict(
            claim_a=independent.text,
            source_a=sources(independent_evidence),
            claim_b=answer,
            source_b=sources(group),
            note=f"kept the independent claim: {group_note} (a coordinated group counts as one unverified source)",
        )
        return Verdict("switch", "independent evidence disagrees with a coordinated group", (conflict,),
                       output=independent, evidence=tuple(independent_evidence))
    if is_answer(memory):
        assert memory is not None
        if same_claim(answer, memory.text):
            if guess:
                return Verdict("refuse",
                               f"only the reader's memory agrees, on an answer the question offers; {group_note}")
            return Verdict("keep", f"the reader's memory agrees; {group_note}")
        conflict = Conflict(
            claim_a=memory.text,
            source_a="reader memory (closed-book)",
            claim_b=answer,
            source_b=sources(group),
            note=f"refused: {group_note} and the reader's memory disagrees",
        )
        return Verdict("refuse", "memory disagrees with a coordinated group", (conflict,))
    return Verdict("refuse", f"uncorroborated: {group_note} and nothing else supports it")


def decide_contest(
    answer: str,
    support: Sequence[Evidence],
    support_sources: int,
    rival: ReaderOutput,
    rival_support: Sequence[Evidence],
    rival_sources: int,
    *,
    trusted: Sequence[Evidence],
    recall: Callable[[], ReaderOutput | None],
    guess: bool = False,
    coordinated: tuple[bool, bool] = (False, False),
) -> Verdict:
    """The aggregation rule when passages read apart give `rival`, a different answer than `answer`, and each
    is stated only by its own passages (see module doc). A KG triple stating the rival wins outright; a side that is
    one coordinated group (`coordinated`: answer's side, rival's side) loses to one that is not, as in `decide`;
    otherwise the side with more independent sources wins; on a tie the reader's memory (`recall()`, called only
    then: a closed-book read) decides, not when the answer it agrees with is one the question offers (`guess`);
    else the pipeline refuses."""
    conflict = Conflict(claim_a=rival.text, source_a=sources(rival_support), claim_b=answer, source_b=sources(support))

    def keep(note: str) -> Verdict:
        return Verdict("keep", note, (replace(conflict, note=note),))

    def switch(note: str) -> Verdict:
        return Verdict("switch", note, (replace(conflict, note=note),), output=rival, evidence=tuple(rival_support))

    count = f"{support_sources} source(s) state the answer, {rival_sources} the other claim"
    group_note = "near-duplicate passages (a coordinated group counts as one unverified source)"
    if any(asserts(rival.text, t.text) for t in trusted):
        return switch("kept the other claim: a trusted KG triple states it")
    if coordinated == (False, True):
        return keep(f"kept the answer: {len(rival_support)} {group_note} state the other claim")
    if coordinated == (True, False):
        return switch(f"kept the other claim: {len(support)} {group_note} state the answer")
    if support_sources > rival_sources:
        return keep(f"kept the answer: {count}")
    if rival_sources > support_sources:
        return switch(f"kept the other claim: {count}")
    memory = recall()
    if is_answer(memory) and not guess:
        assert memory is not None
        if same_claim(answer, memory.text):
            return keep(f"kept the answer: {count}, and the reader's memory agrees with it")
        if same_claim(rival.text, memory.text):
            return switch(f"kept the other claim: {count}, and the reader's memory agrees with it")
    note = f"refused: {count}, and nothing else decides between them"
    return Verdict("refuse", note, (replace(conflict, note=note),))


# ---- the component -------------------------------------------------------------------------------------


class PoisonDefense:
    """Finds a coordinated passage group behind the reader's answer and cross-checks it (see module doc)."""

    def __init__(self, config: DefenseConfig, *, encoder: _Encoder, reader: _Reader) -> None:
        self.config = config
        self.encoder = encoder
        self.reader = reader

    def suspect_group(self, answer: str, pool: Sequence[Evidence], *,
                      polar: bool = False) -> tuple[list[Evidence], float]:
        """The pool passages asserting `answer`, and their coordination; ([], 0) when below the bar.
        `polar`: a yes/no answer, which no passage states word for word; it rests on every passage shown, so the
        group is the largest near-duplicate cluster among them (planted "yes" passages for a "no" question)."""
        candidates = [e for e in pool if e.aspect == "passage" and (polar or asserts(answer, e.text))]
        if len(candidates) < self.config.min_group:
            return [], 0.0
        vectors = self.encoder.encode([e.text for e in candidates])
        members = largest_cluster(vectors, self.config.coordination_similarity) if polar else list(range(len(candidates)))
        if len(members) < self.config.min_group:
            return [], 0.0
        coordination = mean_pairwise_similarity(vectors[members])
        if coordination < self.config.coordination_similarity:
            return [], coordination
        return [candidates[i] for i in members], coordination

    def about_question(self, question: str, passages: Sequence[Evidence]) -> list[Evidence]:
        """`about` with this config's bars, the topic terms taken from `passages` themselves."""
        return about(passages, question, topic_terms(question, passages), coverage=self.config.topic_coverage,
                     min_score=self.config.topic_min_score)

    def check(
        self,
        question: str,
        output: ReaderOutput,
        pool: Sequence[Evidence],
        *,
        trusted: Sequence[Evidence] = (),
        polar: bool = False,
    ) -> Verdict:
        """`pool`: the passages (wider than what the reader saw); `trusted`: KG triples of the linked entities;
        `polar`: the output is a yes/no answer to a yes/no question (rag.answering.polar_answer)."""
        if not is_answer(output):
            return Verdict("keep", "no answer to check")
        group, coordination = self.suspect_group(output.text, pool, polar=polar)
        if not group:
            if self.config.contest and not polar:  # a yes/no answer's sides are the stance step's (rag.stance)
                return self.contest(question, output, pool, trusted=trusted)
            return Verdict("keep", "no coordinated group asserts the answer")
        if any(asserts(output.text, t.text) for t in trusted):
            return decide(output.text, group, coordination, trusted=trusted, independent=None,
                          independent_evidence=(), memory=None)
        in_group = {e.source_id for e in group}
        outside = [e for e in pool if e.aspect == "passage" and e.source_id not in in_group]
        relevant = self.about_question(question, outside)
        independent_evidence = list(trusted) + relevant[: self.config.max_independent]
        independent = None
        if independent_evidence:
            independent = self.reader.read(question, independent_evidence, max_new_tokens=self.config.max_new_tokens)
            if (not polar and is_answer(independent)
                    and not any(asserts(independent.text, e.text) for e in independent_evidence)):
                # No independent passage states it: the reader took it from the question (an option it names) or
                # from memory, so it is no independent source.
                independent = None
        guess = polar or asserts(output.text, question)
        if not polar and is_answer(independent) and not same_claim(output.text, independent.text):
            assert independent is not None
            rival_support = [e for e in outside if asserts(independent.text, e.text)]
            vectors = self.encoder.encode([e.text for e in group + rival_support])
            sides = (vectors[: len(group)], vectors[len(group) :])
            if self.coordinated(sides[1]):
                # Both claims rest on near-duplicate groups: many real reports of one news story read alike too, and
                # the planted group is then the one outside. Neither side may win for the other being a group.
                threshold = self.config.coordination_similarity
                return decide_contest(output.text, group, count_sources(sides[0], threshold), independent,
                                      rival_support, count_sources(sides[1], threshold), trusted=trusted,
                                      recall=lambda: self.recall(question), coordinated=(True, True),
                                      guess=guess or asserts(independent.text, question))
        memory = None
        if not is_answer(independent):
            memory = self.recall(question)
        return decide(output.text, group, coordination, trusted=trusted, independent=independent,
                      independent_evidence=independent_evidence, memory=memory, guess=guess)

    def coordinated(self, vectors: np.ndarray) -> bool:
        """Whether passages with these (normalised) embeddings are one coordinated group (see module doc)."""
        return (len(vectors) >= self.config.min_group
                and mean_pairwise_similarity(vectors) >= self.config.coordination_similarity)

    def recall(self, question: str) -> ReaderOutput | None:
        """The reader's memory: a closed-book read. An answer made of the question's own words ("The country said it
        will ban smoking on beaches" for "Which country said it will ban smoking on beaches?") is none."""
        memory = self.reader.read(question, [], max_new_tokens=self.config.max_new_tokens)
        return None if is_answer(memory) and asserts(memory.text, question) else memory

    def contest(self, question: str, output: ReaderOutput, pool: Sequence[Evidence], *,
                trusted: Sequence[Evidence] = ()) -> Verdict:
        """Read apart the passages about the question that do not state the answer; weigh a different answer that
        only they state against it (`decide_contest`). One short read, two on a tie."""
        passages = [e for e in pool if e.aspect == "passage"]
        support = [e for e in passages if asserts(output.text, e.text)]
        if not support:
            return Verdict("keep", "no passage states the answer: nothing to contest it with")
        if any(asserts(output.text, t.text) for t in trusted):
            return Verdict("keep", "a trusted KG triple states the answer")
        others = [e for e in passages if e not in support]
        relevant = self.about_question(question, others)
        if not relevant:
            return Verdict("keep", "no other passage about the question")
        # Every other passage is embedded: the rival's side is counted over the whole pool, where a planted group
        # shows itself (`about` keeps few of its near-duplicates: their shared words look generic).
        vectors = self.encoder.encode([e.text for e in support + others])
        near = (vectors[len(support) :] @ vectors[: len(support)].T).max(axis=1) >= self.config.contest_similarity
        same_subject = {e.source_id for e, yes in zip(others, near) if yes}
        rival_evidence = [e for e in relevant if e.source_id in same_subject][: self.config.max_independent]
        if not rival_evidence:
            return Verdict("keep", "no other passage about what the answer's passages are about")
        rival = self.reader.read(question, rival_evidence, max_new_tokens=self.config.max_new_tokens)
        if not is_answer(rival) or same_claim(output.text, rival.text):
            return Verdict("keep", "the other passages agree or give no answer")
        rival_rows = [k for k, e in enumerate(others) if e.source_id in same_subject and asserts(rival.text, e.text)]
        rival_support = [others[k] for k in rival_rows]
        if not rival_support or any(asserts(rival.text, e.text) for e in support):
            # Not a rival claim: the reader took it from the question or memory, or the answer's own passages state
            # it too (a bridge entity of a multi-hop question, a second fact of the same passage).
            return Verdict("keep", "no claim that only other passages state")
        threshold = self.config.coordination_similarity
        sides = (vectors[: len(support)], vectors[[len(support) + k for k in rival_rows]])
        support_sources, rival_sources = (count_sources(side, threshold) for side in sides)
        return decide_contest(output.text, support, support_sources, rival, rival_support, rival_sources,
                              trusted=trusted, coordinated=(self.coordinated(sides[0]), self.coordinated(sides[1])),
                              recall=lambda: self.recall(question),
                              guess=asserts(output.text, question) or asserts(rival.text, question))
