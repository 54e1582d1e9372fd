"""The reader's ceiling on a multi-hop set: Hits@1 when it is shown exactly the annotated gold passages
(`gold_passage_ids`, in the annotated order), through the same evidence formatting the pipeline uses.

    python bench/gold_passages.py --index /tmp/idx_musique --questions /tmp/musique_odd30.jsonl \
        --passages /tmp/data/musique/passages.jsonl
"""

from __future__ import annotations

import argparse
import json

from rag.answering import make_evidence
from rag.metrics import contains_answer
from rag.pipeline import QAPipeline
from rag.types import Passage, ScoredPassage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index whose reader settings to use")
    parser.add_argument("--questions", required=True, help="JSONL with question, answers, gold_passage_ids")
    parser.add_argument("--passages", required=True, help="the passages JSONL the gold ids point into")
    args = parser.parse_args()
    pipeline = QAPipeline.load(args.index)
    passages = {}
    with open(args.passages, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            passages[row["id"]] = Passage(row["id"], row["text"], row.get("title", ""))
    right = total = 0
    with open(args.questions, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            gold = [ScoredPassage(passages[g], 1.0, {}) for g in row["gold_passage_ids"]]
            output = pipeline.reader.read(row["question"], make_evidence(None, gold, max_triples=0))
            hit = int(contains_answer(output.text, row["answers"]))
            right, total = right + hit, total + 1
            print(json.dumps({"question": row["question"], "answer": output.text, "gold": row["answers"], "hit": hit}),
                  flush=True)
    print(json.dumps({"questions": total, "gold_passages_hits1": round(right / max(total, 1), 3)}))


if __name__ == "__main__":
    main()
