"""Yes/no reading probe behind rag.prompt.POLAR_RULE and the rejected per-passage stance detector (RESULTS, stop 13).

Input: a ConflictQA set from scripts/make_conflictqa.py built from the *odd* (tuning) lines, which holds each
question's true and planted passage. Two measurements with the packaged reader, greedy:

1. prompt: each question read with its true passage alone and with its planted passage alone; a read counts when
   the yes/no answer is the one that passage states. Without the yes/no line, with it, and with an alternative
   wording.
2. stance: `score_options(["Yes", "No"])` on each of the four ConflictQA passages of a question alone (both sides'
   memory passage and short evidence sentence). A conflict detector flags a pair whose yes-minus-no margins differ
   by at least the gap: how often it flags the two opposite long passages (real conflicts) and two passages of the
   same side (agreeing pairs).

    python scripts/make_conflictqa.py --data /tmp/data/conflictqa --lines odd --limit 40 --out /tmp/cqa_odd
    PYTHONPATH=. python bench/polar_probe.py --set /tmp/cqa_odd --conflictqa /tmp/data/conflictqa
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import rag.prompt as prompt
from rag.reader import ReaderConfig, TransformersReader
from rag.stance import polarity
from rag.types import Evidence

WORDINGS = {
    "no yes/no line": None,
    "POLAR_RULE": prompt.POLAR_RULE,
    "alternative": "For a yes/no question, first copy the few words of the evidence that decide it, then reply Yes or No.",
}
GAPS = (0.4, 0.5, 0.6, 0.8, 1.0)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _yes_no(text: str) -> str | None:
    return next((w for w in text.lower().replace(",", " ").replace(".", " ").split() if w in ("yes", "no")), None)


def prompt_probe(reader: TransformersReader, questions: list[dict], passages: dict[str, dict]) -> None:
    for name, rule in WORDINGS.items():
        # build_messages reads both module globals at call time.
        prompt.is_polar_question = (lambda q: False) if rule is None else _polar
        prompt.POLAR_RULE = rule or ""
        follows = neither = 0
        for q in questions:
            for key, says in (("true_passage_id", q["answers"][0]), ("planted_passage_id", q["target"])):
                evidence = [Evidence("passage", q[key], passages[q[key]]["text"], 0.8, label="P1")]
                answer = _yes_no(reader.read(q["question"], evidence).text)
                follows += answer == says
                neither += answer is None
        print(f"{name}: follows the passage on {follows} of {2 * len(questions)} reads; neither yes nor no: {neither}")
    prompt.is_polar_question, prompt.POLAR_RULE = _polar, WORDINGS["POLAR_RULE"]


def stance_probe(reader: TransformersReader, conflictqa: Path, limit: int) -> None:
    passages = {p["id"]: p for p in _jsonl(conflictqa / "passages.jsonl")}
    rows = []
    for record in _jsonl(conflictqa / "questions.jsonl")[0::2]:
        sides = record.get("per_model", {}).get("chatgpt")
        memory_says = sides and polarity(sides["memory_answer"], sides["counter_answer"])
        ids = sides and [sides[k] for k in ("parametric_memory_id", "parametric_aligned_evidence_id",
                                            "counter_memory_id", "counter_aligned_evidence_id")]
        if not memory_says or any(i not in passages for i in ids):
            continue
        margins = []
        for i in ids:
            yes, no = reader.score_options(record["question"], [Evidence("passage", i, passages[i]["text"], 0.8)],
                                           ["Yes", "No"])
            margins.append(yes - no)
        rows.append((memory_says, margins))
        if len(rows) >= limit:
            break
    sign = {"yes": 1, "no": -1}
    ordered = sum((m[0] - m[2]) * sign[says] > 0 for says, m in rows)
    print(f"stance: the two opposite memory passages ordered right in {ordered} of {len(rows)} questions")
    for gap in GAPS:
        conflicts = sum(abs(m[0] - m[2]) >= gap for _, m in rows) / len(rows)
        agreeing = sum((abs(m[0] - m[1]) >= gap) + (abs(m[2] - m[3]) >= gap) for _, m in rows) / (2 * len(rows))
        print(f"  gap {gap}: flags {conflicts:.2f} of real conflicts and {agreeing:.2f} of agreeing pairs")


_polar = prompt.is_polar_question


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", required=True, help="odd-line folder from scripts/make_conflictqa.py")
    parser.add_argument("--conflictqa", required=True, help="prepared conflictqa folder (all four passage kinds)")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--skip-prompt", action="store_true")
    args = parser.parse_args()
    reader = TransformersReader(ReaderConfig())
    if not args.skip_prompt:
        folder = Path(args.set)
        passages = {p["id"]: p for p in _jsonl(folder / "passages.jsonl")}
        prompt_probe(reader, _jsonl(folder / "questions.jsonl")[: args.limit], passages)
    stance_probe(reader, Path(args.conflictqa), args.limit)


if __name__ == "__main__":
    main()
