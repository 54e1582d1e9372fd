"""Preference pairs for aligning the reader with DPO (issue #5): honesty, poisoning resistance, precedence.

Every pair is rendered with the reader's own prompt (rag.prompt.build_messages), so what the model is trained
on is exactly what it sees at answer time. Pure logic: no torch, no model. Training uses the ODD lines of the
prepared dev files (1st, 3rd, ...); the even lines (`sed -n '2~2p'`) stay held out for evaluation.

Kinds (the `kind` field of each record):
- honesty-unanswerable: SQuAD2 question its paragraph does not answer -> chosen REFUSAL, rejected a plausible
  span of the paragraph (Alignment for Honesty: say "I don't know" instead of guessing).
- honesty-answerable: SQuAD2 answerable -> chosen gold span, rejected REFUSAL (against over-refusal).
- poisoning: PoisonedRAG, 1 clean + several poisoned passages -> chosen the correct answer, rejected the
  attacker's target.
- instruction: SQuAD2 paragraph + "Assume that the answer ... is <another span>" -> chosen that span (the
  user's instruction overrides the evidence), rejected the paragraph's answer.
- evidence-over-memory: RGB counterfactual, every passage gives the counterfactual answer and nothing
  contradicts it -> chosen the evidence's answer, rejected the (memorised) real answer. This follows the
  contract's precedence (evidence over memory); it is kept small because it pulls against the poisoning pairs,
  whose difference is that a clean passage disagrees.
- knowledge-identification (DPA-RAG's pre-alignment task, from the `*.kid.jsonl` files `python -m rag.align
  build-prefs` writes): the useful passage among distractors -> chosen the gold answer, rejected an answer of the
  same kind taken from a distractor (a misleading one first), i.e. the answer a reader that trusts the wrong
  passage gives.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.evaluate import select_lines
from rag.prompt import REFUSAL, build_messages
from rag.types import Evidence

KINDS = ("honesty-unanswerable", "honesty-answerable", "poisoning", "instruction", "evidence-over-memory",
         "knowledge-identification")
PREFS_FILE = "prefs.jsonl"


@dataclass(frozen=True)
class PreferencePair:
    kind: str
    id: str
    question: str
    evidence: tuple[Evidence, ...]
    chosen: str
    rejected: str
    instruction: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown preference kind {self.kind!r}; expected one of {KINDS}")
        if not self.chosen.strip() or not self.rejected.strip():
            raise InputError(f"pair {self.id!r}: chosen and rejected must be non-empty")
        if self.chosen.strip().lower() == self.rejected.strip().lower():
            raise InputError(f"pair {self.id!r}: chosen and rejected are the same ({self.chosen!r})")

    def messages(self) -> list[dict[str, str]]:
        return build_messages(self.question, self.evidence, instruction=self.instruction)

    def to_record(self) -> dict[str, Any]:
        """trl's conversational preference format, plus our own fields to rebuild and audit the pair."""
        return {
            "prompt": self.messages(),
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
            "kind": self.kind,
            "id": self.id,
            "question": self.question,
            "instruction": self.instruction,
            "evidence": [{"source_id": e.source_id, "text": e.text} for e in self.evidence],
            "meta": self.meta,
        }


# ---- data loading ----------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InputError(f"missing data file {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise InputError(f"{path}:{number}: not JSON ({exc})") from exc
    return rows


def split_half(rows: Sequence[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    """'train' = odd lines (1st, 3rd, ...), 'heldout' = even lines, as `sed -n '2~2p'` prints them."""
    if part not in ("train", "heldout"):
        raise InputError(f"part must be 'train' or 'heldout', got {part!r}")
    return select_lines(list(rows), "odd" if part == "train" else "even")


def _passages(path: Path) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in read_jsonl(path)}


def _evidence(rows: Sequence[dict[str, Any]]) -> tuple[Evidence, ...]:
    return tuple(Evidence(aspect="passage", source_id=r["id"], text=r["text"], score=1.0) for r in rows)


# ---- plausible wrong answers (the "hallucination" a reader would give) -------------------------------------

_YEAR = re.compile(r"\b(1\d{3}|20\d{2})s?\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_CAPS = re.compile(r"\b[A-Z][\w'’-]+(?:\s+(?:of|de|the|von|van|du|and)?\s*[A-Z][\w'’-]+)*")


def plausible_span(question: str, text: str, rng: random.Random) -> str | None:
    """A span of `text` of the kind the question asks for (a year for 'when', a name for 'who', ...) that the
    question does not already mention: the confident wrong answer of an over-eager reader."""
    q = question.lower()
    if q.startswith(("when", "what year", "in what year", "in which year")):
        pool = _YEAR.findall(text) or _NUMBER.findall(text)
    elif q.startswith(("how many", "how much", "how long", "how old")):
        pool = _NUMBER.findall(text)
    else:
        pool = _CAPS.findall(text)
    words_in_q = set(re.findall(r"\w+", q))
    candidates = [
        span.strip(" ,.")
        for span in pool
        if span.strip(" ,.") and not set(re.findall(r"\w+", span.lower())) <= words_in_q
    ]
    candidates = list(dict.fromkeys(candidates))
    return rng.choice(candidates) if candidates else None


# ---- builders -------------------------------------------------------------------------------------------


def squad2_pairs(folder: Path, *, part: str, limit_each: int, seed: int = 0) -> Iterator[PreferencePair]:
    rng = random.Random(seed)
    passages = _passages(folder / "passages.jsonl")
    unanswerable = answerable = 0
    for row in split_half(read_jsonl(folder / "questions.jsonl"), part):
        gold = [passages[p] for p in row.get("gold_passage_ids", []) if p in passages]
        if not gold:
            continue
        evidence = _evidence(gold)
        if row.get("is_impossible"):
            if unanswerable >= limit_each:
                continue
            wrong = plausible_span(row["question"], " ".join(p["text"] for p in gold), rng)
            if wrong is None:
                continue
            unanswerable += 1
            yield PreferencePair("honesty-unanswerable", row["id"], row["question"], evidence, REFUSAL, wrong)
        elif row.get("answers"):
            if answerable >= limit_each:
                continue
            answerable += 1
            yield PreferencePair("honesty-answerable", row["id"], row["question"], evidence, row["answers"][0], REFUSAL)


def poisoned_evidence(
    row: dict[str, Any], passages: dict[str, dict[str, Any]], n_poisoned: int, rng: random.Random
) -> tuple[Evidence, ...]:
    """1 clean + `n_poisoned` poisoned passages, shuffled (retrieval would not put the clean one first)."""
    clean = [passages[p] for p in row.get("clean_passage_ids", [])[:1] if p in passages]
    poisoned = [passages[p] for p in row.get("poisoned_passage_ids", [])[:n_poisoned] if p in passages]
    chosen = clean + poisoned
    rng.shuffle(chosen)
    return _evidence(chosen)


def poisonedrag_pairs(
    folder: Path, *, part: str, limit: int, n_poisoned: Sequence[int] = (2, 4), seed: int = 0
) -> Iterator[PreferencePair]:
    """One pair per (question, number of poisoned passages): only the NQ questions have a clean passage (26 in
    the training half), so each is shown with a few poison levels."""
    rng = random.Random(seed)
    passages = _passages(folder / "passages.jsonl")
    count = 0
    for row in split_half(read_jsonl(folder / "questions.jsonl"), part):
        if not row.get("answers") or not row.get("target") or not row.get("clean_passage_ids"):
            continue
        for n in n_poisoned:
            if count >= limit:
                return
            evidence = poisoned_evidence(row, passages, n, rng)
            try:
                pair = PreferencePair(
                    "poisoning", f"{row['id']}-p{n}", row["question"], evidence, row["answers"][0], row["target"]
                )
            except InputError:
                continue  # target equals the answer: no preference to learn
            count += 1
            yield pair


def instruction_pairs(
    folder: Path, *, part: str, limit: int, skip: int = 0, seed: int = 0
) -> Iterator[PreferencePair]:
    """SQuAD2 answerable questions with their paragraph and an instruction to assume another span of it.

    `skip` leaves out the first answerable questions of the half (those of the honesty pairs), so no question
    is taught both ways round."""
    rng = random.Random(seed + 1)
    passages = _passages(folder / "passages.jsonl")
    rows = [r for r in split_half(read_jsonl(folder / "questions.jsonl"), part) if not r.get("is_impossible") and r.get("answers")]
    count = 0
    for row in rows[skip:]:
        if count >= limit:
            return
        gold = [passages[p] for p in row.get("gold_passage_ids", []) if p in passages]
        if not gold:
            continue
        other = plausible_span(row["question"], " ".join(p["text"] for p in gold), rng)
        if other is None or any(_same(other, a) for a in row["answers"]):
            continue
        instruction = f"Assume that the answer to this question is {other}."
        try:
            pair = PreferencePair(
                "instruction", row["id"] + "-instr", row["question"], _evidence(gold), other, row["answers"][0],
                instruction=instruction,
            )
        except InputError:
            continue
        count += 1
        yield pair


def _same(a: str, b: str) -> bool:
    words = lambda text: set(re.findall(r"\w+", text.lower()))  # noqa: E731
    return bool(words(a) & words(b))


def counterfactual_pairs(folder: Path, *, part: str, limit: int, n_passages: int = 3) -> Iterator[PreferencePair]:
    passages = _passages(folder / "passages.jsonl")
    count = 0
    for row in split_half(read_jsonl(folder / "questions.jsonl"), part):
        if count >= limit:
            return
        wrong = [passages[p] for p in row.get("counterfactual_passage_ids", [])[:n_passages] if p in passages]
        if not wrong or not row.get("answers") or not row.get("target"):
            continue
        try:
            pair = PreferencePair(
                "evidence-over-memory", row["id"], row["question"], _evidence(wrong), row["target"], row["answers"][0]
            )
        except InputError:
            continue
        count += 1
        yield pair


def knowledge_identification_pairs(paths: Sequence[Path], *, limit: int, seed: int = 0) -> Iterator[PreferencePair]:
    """Pairs from knowledge-identification examples (`rag.prefs.knowledge_identification`): every passage of
    the example as evidence, chosen the gold answer, rejected a span of the same kind from a distractor."""
    rng = random.Random(seed + 2)
    count = 0
    for path in paths:
        for row in read_jsonl(Path(path)):
            if count >= limit:
                return
            answers = [a for a in row.get("answers", []) if a.strip()]
            useful = set(row.get("useful", []))
            if not answers or not useful:
                continue
            # Misleading passages first: the answer a reader that trusts them would give.
            order = row.get("misleading", []) + [k for k in range(len(row["passages"])) if k not in useful]
            wrong = None
            for k in dict.fromkeys(order):
                span = plausible_span(row["question"], row["passages"][k]["text"], rng)
                if span and not any(_same(span, a) for a in answers):
                    wrong = span
                    break
            if wrong is None:
                continue
            count += 1
            yield PreferencePair("knowledge-identification", f"{row['id']}-kid", row["question"],
                                 _evidence(row["passages"]), answers[0], wrong)


@dataclass(frozen=True)
class PrefsSpec:
    """How many pairs of each kind; the defaults give ~300 pairs (a ~25-minute CPU run is a subset)."""

    data: str = "/work/data_prepared"
    squad2_each: int = 80  # unanswerable and answerable, each
    poisoning: int = 50
    instruction: int = 30
    counterfactual: int = 20
    knowledge_id: int = 40
    # `*.kid.jsonl` files from `python -m rag.align build-prefs` (training lines only); none = no such pairs.
    knowledge_id_files: tuple[str, ...] = ()
    seed: int = 0


def build_pairs(spec: PrefsSpec) -> list[PreferencePair]:
    root = Path(spec.data)
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist (make it with scripts/prepare_data.py)")
    pairs: list[PreferencePair] = []
    pairs += squad2_pairs(root / "squad2", part="train", limit_each=spec.squad2_each, seed=spec.seed)
    pairs += poisonedrag_pairs(root / "poisonedrag", part="train", limit=spec.poisoning, seed=spec.seed)
    pairs += instruction_pairs(root / "squad2", part="train", limit=spec.instruction, skip=spec.squad2_each, seed=spec.seed)
    if spec.counterfactual:
        pairs += counterfactual_pairs(root / "rgb_counterfactual", part="train", limit=spec.counterfactual)
    if spec.knowledge_id and spec.knowledge_id_files:
        pairs += knowledge_identification_pairs([Path(p) for p in spec.knowledge_id_files], limit=spec.knowledge_id,
                                                seed=spec.seed)
    # Interleave kinds so a run cut short still sees every kind.
    random.Random(spec.seed).shuffle(pairs)
    return pairs


def write_prefs(pairs: Sequence[PreferencePair], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREFS_FILE
    with path.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.to_record(), ensure_ascii=False) + "\n")
    return path


def read_prefs(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / PREFS_FILE if Path(folder).is_dir() else Path(folder)
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        if not all(k in row for k in ("prompt", "chosen", "rejected")):
            raise InputError(f"{path}:{number}: a preference record needs prompt, chosen and rejected")
    return rows
