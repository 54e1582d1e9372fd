"""How well the trained yes/no stance model (rag.stance) detects ConflictQA's conflicts, and how often it sees one
where there is none: no reader involved, so a threshold sweep takes a minute.

Two measurements on a set from scripts/make_conflictqa.py (odd lines to choose the threshold, even to report):
1. pairs (as bench/polar_probe.py measured the reader's own yes/no scores at stop 13): each question's two
   opposite memory passages (a real conflict) and its two same-side pairs (memory passage + evidence sentence:
   agreeing). A pair is flagged when its passages take opposite sides at the threshold.
2. retrieval, what the pipeline sees: each question's top-k passages of the set's index. "both": the index holds
   the true and the planted passage of every question; a conflict is found when opposite sides are taken among
   them. "true only" (the control): only true passages are indexed, so every conflict found is a false alarm.
   Also how often the sided passages of the true-only index say the true answer (what the answer follows).

    python scripts/make_conflictqa.py --data /tmp/data/conflictqa --lines odd --limit 40 --out /tmp/cqa_odd
    python scripts/make_conflictqa.py --data /tmp/data/conflictqa --lines odd --limit 40 --sides true --out /tmp/cqa_odd_true
    python -m indexes build --out /tmp/idx_cqa_odd --passages /tmp/cqa_odd/passages.jsonl
    python -m indexes build --out /tmp/idx_cqa_odd_true --passages /tmp/cqa_odd_true/passages.jsonl
    python bench/stance_probe.py --stance $KGRAG_CACHE/stance --conflictqa /tmp/data/conflictqa --lines odd \\
        --set /tmp/cqa_odd --index /tmp/idx_cqa_odd --true-index /tmp/idx_cqa_odd_true
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from indexes.embedder import Embedder
from indexes.store import load_index
from rag.retrievers import DenseRetriever
from rag.stance import StanceModel, polarity

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _side(stance: dict[str, float], threshold: float) -> str:
    return next((s for s in ("yes", "no") if stance[s] >= threshold), "")


def _leaning(stance: dict[str, float]) -> str:
    return "yes" if stance["yes"] > stance["no"] else "no"


def _opposite(a: str, b: str) -> bool:
    return bool(a) and bool(b) and a != b


def pair_probe(model: StanceModel, conflictqa: Path, lines: str, limit: int) -> None:
    passages = {p["id"]: p for p in _jsonl(conflictqa / "passages.jsonl")}
    records = _jsonl(conflictqa / "questions.jsonl")
    rows = []
    for record in records[0::2] if lines == "odd" else records[1::2]:
        sides = record.get("per_model", {}).get("chatgpt")
        memory_says = sides and polarity(sides["memory_answer"], sides["counter_answer"])
        ids = sides and [sides[k] for k in ("parametric_memory_id", "parametric_aligned_evidence_id",
                                            "counter_memory_id", "counter_aligned_evidence_id")]
        if not memory_says or any(i not in passages for i in ids):
            continue
        rows.append((memory_says, model.stances(record["question"], [passages[i]["text"] for i in ids])))
        if len(rows) >= limit:
            break
    right = sum(_leaning(s[0]) == says and _leaning(s[2]) != says for says, s in rows)
    print(f"pairs ({lines} lines, {len(rows)} questions): both memory passages' stances right in {right}")
    for t in THRESHOLDS:
        real = sum(_opposite(_side(s[0], t), _side(s[2], t)) for _, s in rows) / len(rows)
        agreeing = sum(_opposite(_side(s[0], t), _side(s[1], t)) + _opposite(_side(s[2], t), _side(s[3], t))
                       for _, s in rows) / (2 * len(rows))
        print(f"  threshold {t}: flags {real:.2f} of real conflicts and {agreeing:.2f} of agreeing pairs")


def retrieval_probe(model: StanceModel, embedder: Embedder, questions: list[dict], index: str, true_index: str,
                    top_k: int) -> None:
    def stances_of(folder: str) -> list[tuple[dict, list[str], list[dict[str, float]]]]:
        loaded = load_index(folder)
        dense = DenseRetriever(loaded.passages, loaded.vectors, embedder)
        out = []
        for q in questions:
            hits = dense.retrieve(q["question"], top_k=top_k)
            out.append((q, [h.passage.id for h in hits], model.stances(q["question"], [h.passage.text for h in hits])))
        return out

    both, control = stances_of(index), stances_of(true_index)
    shown = sum(q["true_passage_id"] in ids and q["planted_passage_id"] in ids for q, ids, _ in both)
    print(f"retrieval (top {top_k}, {len(questions)} questions): true and planted passage both shown for {shown}")
    for t in THRESHOLDS:
        found = sum({_side(s, t) for s in st} >= {"yes", "no"} for _, _, st in both) / len(both)
        false_alarms = sum({_side(s, t) for s in st} >= {"yes", "no"} for _, _, st in control) / len(control)
        other_sided = sum(bool(_side(s, t)) for q, ids, st in control for i, s in zip(ids, st)
                          if i != q["true_passage_id"]) / max(sum(len(ids) - 1 for _, ids, _ in control), 1)
        follows = [next((_side(s, t) for i, s in zip(ids, st) if i == q["true_passage_id"]), "")
                   for q, ids, st in control]
        true_right = sum(f == q["answers"][0] for f, (q, _, _) in zip(follows, control)) / len(control)
        print(f"  threshold {t}: conflict found {found:.2f} (both) | false alarm {false_alarms:.2f} (true only); "
              f"other questions' passages given a side {other_sided:.2f}; true passage's side right {true_right:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stance", required=True, help="trained stance model folder")
    parser.add_argument("--conflictqa", required=True, help="prepared conflictqa folder (all four passage kinds)")
    parser.add_argument("--lines", choices=["odd", "even"], default="odd")
    parser.add_argument("--set", required=True, help="folder from scripts/make_conflictqa.py (both sides)")
    parser.add_argument("--index", required=True, help="index of the set's passages (both sides)")
    parser.add_argument("--true-index", required=True, help="index of the set's true passages only")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    model = StanceModel(args.stance)
    pair_probe(model, Path(args.conflictqa), args.lines, args.limit)
    embedder = Embedder(device="cpu")
    questions = _jsonl(Path(args.set) / "questions.jsonl")[: args.limit]
    retrieval_probe(model, embedder, questions, args.index, args.true_index, args.top_k)


if __name__ == "__main__":
    main()
