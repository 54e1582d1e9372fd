"""Does letting the reader choose among near-equal KG paths help? Hits@1 of the KG answer with and without
`kg_reader_choice`, on the held-out (even-numbered) lines of each questions file (a script, not a test).

    python bench/kg_reader_choice.py INDEX_DIR QUESTIONS.jsonl [...] [--n 50] [--reader NAME] [--device cpu]

Per question: `KGRetriever.retrieve`, the KG answer as the pipeline gives it (`answering.kg_answer`, hits1 as
`rag eval` counts it), and, where the retriever kept 2+ near-equal paths (`Subgraph.alternatives`), the KG answer
after `rag.path_choice.choose_path` with the real reader. The reader runs only on those questions. Prints a
markdown table: n, how many had alternatives, hits1 without and with, questions won and lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from indexes.embedder import Embedder
    from indexes.store import load_index
    from kg.retrieval import KGRetriever
    from rag import answering
    from rag.metrics import contains_answer
    from rag.path_choice import choose_path
    from rag.reader import ReaderConfig, TransformersReader

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path)
    parser.add_argument("questions", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=50, help="held-out questions per file")
    parser.add_argument("--reader", default=ReaderConfig().model)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-answers", type=int, default=10)
    args = parser.parse_args()

    index = load_index(args.index)
    retriever = KGRetriever(index.graph, Embedder(index.embedder_name), entity_vectors=index.entity_vectors)
    retriever.warm_up()
    reader = TransformersReader(ReaderConfig(model=args.reader, device=args.device))
    print("| questions | n | with alternatives | hits1 without | hits1 with reader choice | won | lost | reader s/choice |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.questions:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][1::2][: args.n]
        questions = [json.loads(line) for line in lines]
        without = with_choice = ambiguous = won = lost = 0
        choice_seconds = 0.0
        for q in questions:
            subgraph = retriever.retrieve(q["question"])
            text = answering.kg_answer(q["question"], subgraph, max_answers=args.max_answers).text if subgraph.candidates else ""
            base = contains_answer(text, q["answers"])
            chosen_hit = base
            if len(subgraph.alternatives) > 1:
                ambiguous += 1
                started = time.perf_counter()
                chosen, _ = choose_path(reader, q["question"], subgraph)
                choice_seconds += time.perf_counter() - started
                chosen_text = answering.kg_answer(q["question"], chosen, max_answers=args.max_answers).text
                chosen_hit = contains_answer(chosen_text, q["answers"])
                won += chosen_hit > base
                lost += chosen_hit < base
            without += base
            with_choice += chosen_hit
        n = len(questions)
        per_choice = choice_seconds / ambiguous if ambiguous else 0.0
        print(
            f"| {path} | {n} | {ambiguous} | {without / n:.3f} | {with_choice / n:.3f} | {won} | {lost} | {per_choice:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
