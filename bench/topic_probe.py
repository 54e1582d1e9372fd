"""Which passages the poison defense's isolated read may rest on (`rag.defense.about`), on PoisonedRAG.

For each question, the pool the default preset examines is split into the question's planted passages and the
rest; the rest is what the isolated read chooses from. Printed for each pair of bars: the share of questions with a
true passage in that rest whose true passage passes (it should), and per subset the number of questions where some
other question's passage passes (it should not: the reader then answers from it).

    python bench/topic_probe.py --index /tmp/idx_pr --questions /tmp/data/poisonedrag/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from rag.answering import make_evidence
from rag.defense import about, topic_terms
from rag.pipeline import QAPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index built from the PoisonedRAG passages")
    parser.add_argument("--questions", required=True,
                        help="PoisonedRAG questions JSONL (id, question, subset, clean_passage_ids, "
                             "poisoned_passage_ids)")
    parser.add_argument("--coverage", type=float, nargs="+", default=[0.2, 0.25, 0.34])
    parser.add_argument("--min-score", type=float, nargs="+", default=[0.3, 0.35, 0.4])
    args = parser.parse_args()
    pipeline = QAPipeline.load(args.index, use_stance=False)
    rows = []
    with open(args.questions, encoding="utf-8") as f:
        for line in f:
            question = json.loads(line)
            _, pool = pipeline.select_chain(question["question"])
            planted = set(question["poisoned_passage_ids"])
            rest = [e for e in make_evidence(None, pool, max_triples=0) if e.source_id not in planted]
            rows.append((question, rest, topic_terms(question["question"], rest)))
    print(json.dumps({"questions": len(rows),
                      "with a true passage in the pool": sum(any(e.source_id in q["clean_passage_ids"] for e in rest)
                                                              for q, rest, _ in rows)}))
    for coverage in args.coverage:
        for min_score in args.min_score:
            true_kept, true_total, other_kept = 0, 0, Counter()
            for question, rest, terms in rows:
                kept = {e.source_id for e in about(rest, question["question"], terms, coverage=coverage,
                                                   min_score=min_score)}
                clean = set(question["clean_passage_ids"])
                if clean & {e.source_id for e in rest}:
                    true_total += 1
                    true_kept += bool(clean & kept)
                other_kept[question.get("subset", "all")] += bool(kept - clean)
            print(json.dumps({"coverage": coverage, "min_score": min_score,
                              "true passage passes": round(true_kept / max(1, true_total), 3),
                              "questions where another question's passage passes": dict(other_kept)}))


if __name__ == "__main__":
    main()
