"""Knowledge-conflict set from ConflictQA (StrategyQA part): each yes/no question with one passage for each side.

For one source model, ConflictQA gives a question two opposite claims (`memory_answer`, `counter_answer`)
with a passage written for each. A claim is mapped to yes/no by its negation: of the pair, the claim with
more negation words ("not", "n't", "never", "no") says "no" (kept only when exactly one side negates more).
The passage whose claim disagrees with StrategyQA's ground truth is the planted false claim: the questions
file gets `answers` = [truth] and `target` = the false yes/no, so `rag eval` scores `asr` (share of answers
repeating the planted claim) and `conflicts` (share with a conflict reported). Both passages go into one
passages file to index (`--sides true`: only the true one, the control without a conflict). Odd lines
(1-based) are kept for tuning, so by default the set is built from even ones.

    python scripts/make_conflictqa.py --data /tmp/data/conflictqa --model chatgpt --limit 40 --out /tmp/conflictqa
    python -m indexes build --out /tmp/idx_cqa --passages /tmp/conflictqa/passages.jsonl
    python -m rag eval --index /tmp/idx_cqa --questions /tmp/conflictqa/questions.jsonl --preset default
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.stance import polarity


def make_set(questions: list[dict], passages: dict[str, dict], model: str, lines: str, limit: int,
             sides: str = "both") -> tuple[list[dict], list[dict]]:
    chosen = questions[1::2] if lines == "even" else questions[0::2] if lines == "odd" else questions
    rows: list[dict] = []
    texts: list[dict] = []
    for record in chosen:
        claims = record.get("per_model", {}).get(model)
        truth = (record.get("answers") or [None])[0]
        if not claims or truth not in ("yes", "no"):
            continue
        memory, counter = claims["memory_answer"], claims["counter_answer"]
        memory_says = polarity(memory, counter)
        if memory_says is None:
            continue
        counter_says = "no" if memory_says == "yes" else "yes"
        ids = {memory_says: claims["parametric_memory_id"], counter_says: claims["counter_memory_id"]}
        if any(i not in passages for i in ids.values()):
            continue
        false_side = "no" if truth == "yes" else "yes"
        rows.append({
            "id": f"{record['id']}-{model}",
            "question": record["question"],
            "answers": [truth],
            "target": false_side,
            "true_passage_id": ids[truth],
            "planted_passage_id": ids[false_side],
        })
        for passage_id in ids.values() if sides == "both" else [ids[truth]]:
            p = passages[passage_id]
            texts.append({"id": p["id"], "title": p.get("title", ""), "text": p["text"], "source": p.get("source", "")})
        if len(rows) >= limit:
            break
    return rows, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared conflictqa folder (questions.jsonl, passages.jsonl)")
    parser.add_argument("--model", default="chatgpt", help="whose memory/counter passages (a per_model key)")
    parser.add_argument("--lines", choices=["odd", "even", "all"], default="even")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--sides", choices=["both", "true"], default="both",
                        help="true: the control set, without the planted passage")
    parser.add_argument("--out", required=True, help="folder for questions.jsonl and passages.jsonl")
    args = parser.parse_args()
    data = Path(args.data)
    questions = [json.loads(line) for line in (data / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    passages = {}
    for line in (data / "passages.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            p = json.loads(line)
            passages[p["id"]] = p
    rows, texts = make_set(questions, passages, args.model, args.lines, args.limit, args.sides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "questions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out / "passages.jsonl").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    yes = sum(r["answers"][0] == "yes" for r in rows)
    print(json.dumps({"questions": len(rows), "truth_yes": yes, "truth_no": len(rows) - yes, "passages": len(texts)}))


if __name__ == "__main__":
    main()
