"""KG retrieval quality on QA files: first-candidate Hits@1, answer coverage of the retrieved subgraph, and
whether the topic entity was linked first, and the subgraph's size (triples; the retriever's budget is 50). Uses the even-numbered lines only (the exemplars were learned from
the odd-numbered ones, see scripts/make_exemplars.sh).

    python bench/kg_retrieval_quality.py INDEX_DIR QUESTIONS.jsonl [QUESTIONS.jsonl ...]
"""

from __future__ import annotations

import json
import sys
import time

from indexes.embedder import Embedder
from indexes.store import load_index
from kg.retrieval import KGRetriever
from kg.text import normalize_name


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    index = load_index(argv[0])
    if index.graph is None:
        print(f"{argv[0]} has no knowledge graph", file=sys.stderr)
        return 2
    retriever = KGRetriever(index.graph, Embedder(index.embedder_name), entity_vectors=index.entity_vectors)
    retriever.warm_up()
    print("| questions | n | first-candidate hits1 | subgraph answer coverage | topic linked first | triples mean/max | s/question |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in argv[1:]:
        with open(path, encoding="utf-8") as handle:
            questions = [json.loads(line) for line in handle if line.strip()][1::2]
        hits = covered = linked = 0
        sizes = []
        started = time.perf_counter()
        for q in questions:
            subgraph = retriever.retrieve(q["question"])
            gold = {normalize_name(a) for a in q["answers"]}
            hits += bool(subgraph.candidates) and normalize_name(subgraph.candidates[0]) in gold
            sizes.append(len(subgraph.triples))
            names = {normalize_name(n) for s in subgraph.triples for n in (s.triple.head, s.triple.tail)}
            covered += bool(gold & names)
            linked += bool(subgraph.entities) and subgraph.entities[0].name == q.get("topic_entity")
        n = len(questions)
        seconds = (time.perf_counter() - started) / n
        size = f"{sum(sizes) / n:.1f}/{max(sizes)}"
        print(f"| {path} | {n} | {hits / n:.3f} | {covered / n:.3f} | {linked / n:.3f} | {size} | {seconds:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
